"""The serializer interface: value <-> bytes. Knows nothing of storage."""

from __future__ import annotations

import abc
from typing import Any, Protocol

from .._suggest import suggest_keywords
from ..errors import SerializationError

__all__ = ["Serializer", "WritableStream"]


class WritableStream(Protocol):
    """What :meth:`Serializer.dump` writes to: anything with ``write(bytes-like)``."""

    def write(self, data: Any, /) -> int | None: ...


class Serializer(abc.ABC):
    """Turns a value into bytes and back.

    Subclasses implement :meth:`serialize` and :meth:`deserialize` and set a
    stable :attr:`name`. The name is stored in the payload's integrity record
    so that a reader with another serializer gets a clear
    :class:`~resultkit.errors.SerializerMismatchError`, never a wrong value.

    Serializers that can write a value without building all of its bytes in
    memory first override :meth:`dump` (the Result passes an open, writable
    binary stream).
    """

    #: Stable identifier recorded with every payload this serializer writes.
    name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # a misspelt keyword names the near one
            cls.__init__ = suggest_keywords(cls.__init__)  # type: ignore[method-assign]

    @abc.abstractmethod
    def serialize(self, value: Any) -> bytes:
        """Return the bytes that represent ``value``."""

    @abc.abstractmethod
    def deserialize(self, data: bytes) -> Any:
        """Return the value that ``data`` (made by :meth:`serialize`) represents."""

    def dump(self, value: Any, stream: WritableStream) -> None:
        """Write ``value`` to a binary ``stream``. Streams when the format allows it."""
        stream.write(self.serialize(value))

    def allocate(self, size: int) -> Any:
        """A writable buffer of ``size`` bytes that a verified payload is read into.

        It is then passed to :meth:`deserialize`. The default is a
        ``bytearray``; a serializer that can use the bytes in place (a numpy
        array's memory) returns a buffer it can keep.
        """
        return bytearray(size)

    def load(self, stream: Any) -> Any:
        """Read a value from a binary ``stream`` (with ``read``/``readinto``/``readline``).

        Serializers that can deserialize while reading override it; the
        default reads everything and calls :meth:`deserialize`.
        """
        return self.deserialize(stream.read())

    # -- helpers shared by the built-in serializers -------------------------
    def _fail(self, action: str, value_or_data: Any, exc: BaseException) -> SerializationError:
        what = (
            f"a value of type {type(value_or_data).__name__}"
            if action == "serialize"
            else f"{len(value_or_data)} bytes"
            if isinstance(value_or_data, (bytes, bytearray, memoryview))
            else "the payload"
        )
        fix = (
            (
                "Choose a serializer that supports this value "
                "(PickleSerializer handles almost any Python object)."
                if self.name != "pickle"
                else "Pickle cannot store it (locks, open files, sockets and live "
                "connections never pickle): return what the value holds instead."
            )
            if action == "serialize"
            else "The bytes are not in this serializer's format: read them with the "
            "serializer that wrote them, or write the value again."
        )
        return SerializationError(
            f"{type(self).__name__} ({self.name!r}) could not {action} {what}: "
            f"{type(exc).__name__}: {exc}. {fix}"
        )

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
