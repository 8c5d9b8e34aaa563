"""Every exception and warning resultkit raises, in one hierarchy.

Catch :class:`ResultKitError` for anything the library raises on purpose.
Each message names what was wrong (the location, the template key, the
serializer) and how to fix it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any

__all__ = [
    "ResultKitError",
    "ResultError",
    "ResultNotFoundError",
    "ResultCorruptError",
    "SerializerMismatchError",
    "UnsafeLocationError",
    "TemplateError",
    "MissingTemplateKeyError",
    "SerializationError",
    "StorageError",
    "StorageAccessError",
    "ConfigurationError",
    "FlowError",
    "ResultKitWarning",
    "UnhashableInputError",
]


class ResultKitError(Exception):
    """Base of every error raised by resultkit.

    Every one pickles (a worker process's error reaches its parent), whatever
    its constructor takes: it is rebuilt from its message and attributes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args), dict(self.__dict__))


def _rebuilt(cls: type[ResultKitError], args: tuple[Any, ...]) -> ResultKitError:
    """An error of ``cls`` with ``args``, without its constructor (see ``__reduce__``)."""
    error = cls.__new__(cls)
    error.args = args
    return error


class ConfigurationError(ResultKitError, ValueError):
    """A class was built with an invalid argument (unknown format, bad option)."""


class ResultError(ResultKitError):
    """Base of the errors raised while formatting, reading or writing a Result."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        #: The location the error is about, when there is one.
        self.location = location


class ResultNotFoundError(ResultError, FileNotFoundError):
    """Nothing is stored at the location."""


class ResultCorruptError(ResultError):
    """The stored payload does not match its integrity record (or has none).

    The payload is never deserialized in that case: a corrupt object is an
    error (or, for a task target, a cache miss), never a wrong value.
    """


class SerializerMismatchError(ResultError):
    """The payload was written by a different serializer than the one reading it."""

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        written_by: str = "",
        reading_with: str = "",
    ) -> None:
        super().__init__(message, location=location)
        self.written_by = written_by
        self.reading_with = reading_with


class UnsafeLocationError(ResultError, ValueError):
    """A formatted location would leave the Result's root (``..``, absolute, NUL...)."""


class TemplateError(ResultError, ValueError):
    """A location template could not be formatted."""


class MissingTemplateKeyError(TemplateError, KeyError):
    """A location template names a key that was not given."""

    def __init__(
        self, message: str, *, key: str, given: list[str], location: str | None = None
    ) -> None:
        super().__init__(message, location=location)
        self.key = key
        self.given = given

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class SerializationError(ResultError):
    """A serializer failed to turn a value into bytes or bytes into a value."""


class StorageError(ResultError):
    """The storage backend failed (network error, server error, full disk)."""


class StorageAccessError(StorageError, PermissionError):
    """The storage backend refused access (wrong or missing credentials, 403)."""


class FlowError(ResultKitError, ValueError):
    """A flow or task is defined or run incorrectly (missing parameter, bad input name...)."""


class ResultKitWarning(UserWarning):
    """Base of the warnings resultkit emits."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB = os.path.dirname(os.path.abspath(threading.__file__)) + os.sep
#: Frames that are neither the user's nor resultkit's own: the machinery that runs a
#: task on a thread (a ThreadExecutor's worker), or a context manager's generator.
_MACHINERY = tuple(
    _STDLIB + name for name in ("threading.py", "concurrent" + os.sep, "asyncio" + os.sep,
                                "contextlib.py", "contextvars.py")
)  # fmt: skip
#: Where the user's code entered resultkit (file, line, module globals), for a warning
#: raised where no user frame is on the stack (a worker thread): set by ``Flow.run``.
_ENTRY: ContextVar[tuple[str, int, dict[str, Any]] | None] = ContextVar(
    "resultkit_user_entry", default=None
)


def _not_users(frame: FrameType) -> bool:
    name = frame.f_code.co_filename
    return name.startswith(_PACKAGE) or name.startswith(_MACHINERY)


def _users_frame(frame: FrameType) -> tuple[FrameType | None, int]:
    """The first frame from ``frame`` outward that is the user's (or None), and how many
    frames out of ``frame`` it is."""
    found: FrameType | None = frame
    steps = 0
    while found is not None and _not_users(found):
        found = found.f_back
        steps += 1
    return found, steps


@contextlib.contextmanager
def entered_from_user() -> Iterator[None]:
    """Remember, for the block, the user's line that called resultkit (for :func:`warn_user`).

    Used by ``Flow.run``: a warning raised on a worker thread, where no frame
    of the user's is on the stack, then points at the ``flow.run(...)`` line.
    """
    frame, _ = _users_frame(sys._getframe(2))
    entry = None if frame is None else (frame.f_code.co_filename, frame.f_lineno, frame.f_globals)
    token = _ENTRY.set(entry)
    try:
        yield
    finally:
        _ENTRY.reset(token)


def warn_user(message: str, category: type[Warning] = ResultKitWarning) -> None:
    """Warn, pointing at the line of the caller's code that led here.

    The warning's file and line are those of the first frame that is neither
    resultkit's nor the standard library's thread machinery (``flow.run()``,
    ``result.read(...)``). On a worker thread, where no frame of the user's is
    on the stack, it points at the ``flow.run(...)`` line that started the run
    (:func:`entered_from_user`); failing that, at the library line that noticed.
    """
    frame, steps = _users_frame(sys._getframe(1))
    if frame is not None:
        warnings.warn(message, category, stacklevel=2 + steps)  # 2: our caller's line
        return
    entry = _ENTRY.get()
    if entry is None:
        warnings.warn(message, category, stacklevel=2)
        return
    filename, lineno, module_globals = entry
    warnings.warn_explicit(
        message,
        category,
        filename,
        lineno,
        module=module_globals.get("__name__"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


class UnhashableInputError(ResultKitError, TypeError):
    """A task input cannot be hashed deterministically for output caching.

    The runner turns output caching off for that run (with a warning) rather
    than build a partial cache key. It is not a :class:`ResultError`: no
    stored result or location is involved.
    """
