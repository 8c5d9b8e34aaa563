"""PickleSerializer: any Python object with cloudpickle; large buffers out of band, read in place."""

from __future__ import annotations

import copy
import io
import os
import pickle
from typing import Any

import cloudpickle

from ..errors import ConfigurationError, SerializationError
from ._base import Serializer, WritableStream
from ._buffers import MAP_FROM, aligned_buffer, anonymous_buffer
from ._pickle_layout import (
    ALIGN,
    FAMILY,
    HEADER,
    LayoutError,
    LayoutWriter,
    counted,
    is_layout,
    split_layout,
)

__all__ = ["PickleSerializer", "load_pickle"]

#: A buffer of at least this many bytes (one numpy array, one pandas block,
#: one arrow buffer) is written out of band. Below it a copy costs less than
#: the layout's few lines of bookkeeping, and small values stay plain pickles.
OUT_OF_BAND_FROM = 1 << 20


class PickleSerializer(Serializer):
    """Serializes (almost) any Python object with cloudpickle, protocol 5.

    Large buffers go *out of band*: a value holding a buffer of 1 MB or
    more (a numpy array, a pandas column block, an arrow buffer) is written
    as a standard pickle stream followed by those buffers' bytes, each at a
    64-byte aligned offset, and a small table of where they are. Reading
    makes the arrays *in* the verified buffer the payload was read into: no
    copy after the read, and the arrays are writable. Every other value is a
    plain pickle, byte for byte what ``cloudpickle.dumps`` gives, and plain
    pickles (older payloads, Prefect 1 targets) read as before.
    :func:`load_pickle` reads either form from a file.

    Args:
        protocol: the pickle protocol (2 to 5, default 5).
        out_of_band: write large buffers out of band (the default with
            protocol 5). ``False`` always writes a plain pickle, which
            ``pickle.load`` opens; reading takes both forms either way.

    Writing streams: :meth:`dump` pickles straight into the open file and
    writes each large buffer from the value's own memory, so a 100 MB array
    is never held twice.

    Example:
        >>> import numpy as np
        >>> s = PickleSerializer()
        >>> s.deserialize(s.serialize({"a": 1}))
        {'a': 1}
        >>> data = bytearray(s.serialize(np.zeros(1 << 18)))  # 2 MB: out of band
        >>> array = s.deserialize(data)  # made in `data`'s memory
        >>> array.flags.writeable, array.base is not None
        (True, True)
    """

    name = "pickle"

    def __init__(self, protocol: int = 5, out_of_band: bool | None = None) -> None:
        if (
            isinstance(protocol, bool)
            or not isinstance(protocol, int)
            or not 2 <= protocol <= pickle.HIGHEST_PROTOCOL
        ):
            raise ConfigurationError(
                f"PickleSerializer(protocol={protocol!r}): pickle protocol is not available "
                f"here; use an integer from 2 to {pickle.HIGHEST_PROTOCOL} (default 5)"
            )
        if out_of_band is not None and not isinstance(out_of_band, bool):
            raise ConfigurationError(
                f"PickleSerializer(out_of_band={out_of_band!r}): give True, False, or leave "
                "it out (out of band with protocol 5)"
            )
        if out_of_band and protocol < 5:
            raise ConfigurationError(
                f"PickleSerializer(protocol={protocol}, out_of_band=True): out-of-band buffers "
                "need protocol 5; use protocol=5, or out_of_band=False"
            )
        self.protocol = protocol
        self.out_of_band = protocol >= 5 if out_of_band is None else out_of_band

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A serializer pickled by an older resultkit had no out_of_band.
        state.setdefault("out_of_band", state.get("protocol", 5) >= 5)
        self.__dict__.update(state)

    def in_band(self) -> PickleSerializer:
        """This serializer writing plain pickles only (``CompressedSerializer`` uses it).

        Example:
            >>> PickleSerializer().in_band().out_of_band
            False
        """
        plain = copy.copy(self)
        plain.out_of_band = False
        return plain

    def serialize(self, value: Any) -> bytes:
        if not self.out_of_band:
            try:
                return cloudpickle.dumps(value, protocol=self.protocol)
            except Exception as exc:
                raise self._fail("serialize", value, exc) from exc
        out = io.BytesIO()
        self.dump(value, out)
        return out.getvalue()

    def dump(self, value: Any, stream: WritableStream) -> None:
        try:
            if not self.out_of_band:
                cloudpickle.dump(value, stream, protocol=self.protocol)
                return
            writer = LayoutWriter(stream, OUT_OF_BAND_FROM)
            cloudpickle.dump(value, writer, protocol=self.protocol, buffer_callback=writer.buffer)
        except Exception as exc:
            raise self._fail("serialize", value, exc) from exc
        # Outside the try: a failure of the stream itself is the storage's to report.
        writer.finish()

    def allocate(self, size: int) -> Any:
        # Large payloads go into fresh pages (huge where the kernel allows),
        # never zero-filled first as a bytearray would be. Out-of-band arrays
        # are made in this memory, so it starts at a multiple of 64 (the
        # layout aligns each buffer to 64 from the payload's start).
        if size < OUT_OF_BAND_FROM:
            return bytearray(size)
        if size < MAP_FROM:  # measured: below this, malloc's reused memory beats new pages
            return aligned_buffer(size, ALIGN)
        return anonymous_buffer(size)

    def deserialize(self, data: Any) -> Any:
        try:
            if type(data) in _BYTES and data[:1] != HEADER[:1]:  # the usual small value: fast
                return pickle.loads(data)
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            if not is_layout(view[: len(FAMILY)].tobytes()):
                return pickle.loads(data)
            return _load_laid_out(view)
        except LayoutError as exc:
            raise SerializationError(
                f"{type(self).__name__} ({self.name!r}) could not read {view.nbytes} bytes laid "
                f"out of band: {exc}. The payload was damaged after it was written (or not "
                "written by resultkit); write the value again"
            ) from exc
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc

    def load(self, stream: Any) -> Any:
        try:
            start = stream.tell() if stream.seekable() else None
        except (AttributeError, OSError, ValueError):
            start = None
        if start is None:  # cannot look ahead: the whole payload, then deserialize
            return self.deserialize(_read_all(stream))
        try:
            head = stream.read(len(HEADER))
            stream.seek(start)
            if not is_layout(head):
                return pickle.load(stream)
        except Exception as exc:
            raise self._fail("deserialize", None, exc) from exc
        return self.deserialize(_read_all(stream))


def _load_laid_out(view: memoryview) -> Any:
    """The value of a payload in the out-of-band layout (see ``_pickle_layout``)."""
    stream, buffers = split_layout(view)
    if view.readonly:  # e.g. bytes: arrays must be writable, so they get memory of their own
        buffers = [memoryview(bytearray(b)) for b in buffers]
    used = [0]
    value = pickle.loads(stream, buffers=counted(buffers, used))
    if used[0] != len(buffers):
        raise LayoutError(
            f"out-of-band pickle lists {len(buffers)} buffers but its pickle stream "
            f"uses {used[0]}: the payload is damaged"
        )
    return value


def _read_all(stream: Any) -> Any:
    """The rest of ``stream`` in a writable buffer (read in place where it can be)."""
    try:
        size = os.fstat(stream.fileno()).st_size - stream.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return bytearray(stream.read())
    buf = PickleSerializer().allocate(max(size, 0))
    view = memoryview(buf)
    filled = 0
    while filled < size:
        n = stream.readinto(view[filled:]) or 0
        if not n:
            break
        filled += n
    view.release()
    if filled < size:
        return bytearray(memoryview(buf)[:filled])
    rest = stream.read()
    return buf if not rest else bytearray(memoryview(buf)) + rest


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """The value of a pickle file written by :class:`PickleSerializer`, in either form.

    For files outside a Result (a copied payload); it checks no integrity
    record, and unpickling runs code of the file's choosing: only for
    files you trust. A plain pickle works too.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.pkl")
        >>> with open(path, "wb") as f:
        ...     PickleSerializer().dump(np.arange(1 << 18), f)
        >>> int(load_pickle(path).sum())
        34359607296
    """
    with open(path, "rb") as f:
        return PickleSerializer().deserialize(_read_all(f))


_BYTES = (bytes, bytearray)
