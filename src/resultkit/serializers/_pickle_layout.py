"""The file layout of a pickle whose large buffers lie out of band, after the pickle stream.

::

    header   16 bytes  b"\\xffRKPICKLEOOB v1\\n"
    pickle   a standard protocol-5 pickle stream (it ends with STOP)
    buffers  each buffer's bytes, starting at a multiple of 64 from the file's start
    table    (offset, length) of each buffer, unsigned 64-bit little-endian
    footer   24 bytes: pickle length, buffer count (both u64 LE), b"RKOOBEND"

It is ``pickle.loads(pickle_part, buffers=[the buffers in order])``. A plain
pickle can never be taken for this layout, nor this layout for a plain
pickle: byte ``0xff`` is no pickle opcode, so no stream that ``pickle.loads``
accepts begins with the header, and ``pickle.loads`` refuses every file that
does ("invalid load key").
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterator
from typing import Any

from ._base import WritableStream

__all__ = [
    "LayoutError",
    "HEADER",
    "FAMILY",
    "ALIGN",
    "LayoutWriter",
    "is_layout",
    "split_layout",
    "counted",
]

#: What every version of the layout starts with; the version follows.
FAMILY = b"\xffRKPICKLEOOB "
HEADER = FAMILY + b"v1\n"
_FOOTER_MAGIC = b"RKOOBEND"
_FOOTER = struct.Struct("<QQ8s")
_ENTRY = struct.Struct("<QQ")
#: Buffers start at multiples of this: a cache line, and any dtype's alignment.
ALIGN = 64
_PAD = bytes(ALIGN)


class LayoutError(ValueError):
    """A payload in this layout whose header, table or footer is inconsistent."""


def is_layout(head: bytes) -> bool:
    """Whether a payload starting with ``head`` (at least 13 bytes of it) is in this layout."""
    return head[: len(FAMILY)] == FAMILY


class LayoutWriter:
    """The stream a pickler writes to: a plain pickle, or this layout once a buffer goes out of band.

    Until the first buffer of at least ``threshold`` bytes is seen, the
    pickle's bytes are held (up to ``hold_limit``), since the header, which
    must come first, is written only if the file is in the layout. A value
    whose pickle grows past ``hold_limit`` before any large buffer stays a
    plain pickle (its later buffers go in band) so memory stays bounded.

    Example:
        >>> import io, pickle
        >>> out = io.BytesIO()
        >>> w = LayoutWriter(out, threshold=4)
        >>> pickle.dump(pickle.PickleBuffer(bytearray(b"abcd")), w, 5, buffer_callback=w.buffer)
        >>> w.finish()
        >>> out.getvalue().startswith(HEADER)
        True
    """

    __slots__ = ("_stream", "_held", "_held_size", "_laid_out", "_pickled", "_buffers", "_limits")

    def __init__(self, stream: WritableStream, threshold: int, hold_limit: int = 32 << 20) -> None:
        self._stream = stream
        #: The pickle's first bytes while undecided; None once written out.
        self._held: list[bytes] | None = []
        self._held_size = 0
        self._laid_out = False
        self._pickled = 0  # bytes of the pickle stream written after the header
        self._buffers: list[memoryview] = []
        self._limits = (threshold, hold_limit)

    def write(self, data: Any) -> int:
        n = data.nbytes if isinstance(data, memoryview) else memoryview(data).nbytes
        held = self._held
        if held is not None:
            if self._held_size + n <= self._limits[1]:
                # The pickler's frames are fresh bytes; a buffer it writes
                # directly is the caller's memory, copied to be safe.
                held.append(data if type(data) is bytes else bytes(data))
                self._held_size += n
                return n
            self._release(laid_out=False)  # a large pickle with no large buffer yet: plain
        self._stream.write(data)
        self._pickled += n
        return n

    def buffer(self, buf: pickle.PickleBuffer) -> bool:
        """The pickler's ``buffer_callback``: False (out of band) for a large contiguous buffer."""
        if self._held is None and not self._laid_out:
            return True  # committed to a plain pickle
        try:
            raw = buf.raw()
        except BufferError:  # not contiguous: only in band
            return True
        if raw.nbytes < self._limits[0]:
            return True
        if not self._laid_out:
            self._release(laid_out=True)
        self._buffers.append(raw)  # kept alive (and written) after the pickle
        return False

    def _release(self, laid_out: bool) -> None:
        held, self._held = self._held or [], None
        self._laid_out = laid_out
        if laid_out:
            self._stream.write(HEADER)
        for part in held:
            self._stream.write(part)
            self._pickled += len(part)

    def finish(self) -> None:
        """Write what is held (a plain pickle), or the buffers, table and footer."""
        if not self._laid_out:
            if self._held is not None:
                self._release(laid_out=False)
            return
        pos = len(HEADER) + self._pickled
        table = []
        for raw in self._buffers:
            pad = -pos % ALIGN
            if pad:
                self._stream.write(_PAD[:pad])
            pos += pad
            self._stream.write(raw)
            table.append(_ENTRY.pack(pos, raw.nbytes))
            pos += raw.nbytes
        count = len(self._buffers)
        self._buffers = []
        self._stream.write(b"".join(table) + _FOOTER.pack(self._pickled, count, _FOOTER_MAGIC))


def split_layout(view: memoryview) -> tuple[memoryview, list[memoryview]]:
    """The pickle stream and the buffers of a payload in this layout, every bound checked.

    Raises :class:`LayoutError` naming what is wrong (a truncated file, a table
    pointing outside the payload or into the pickle, overlapping buffers):
    never a view out of range.
    """
    size = view.nbytes
    head = view[: len(HEADER)].tobytes()
    if head != HEADER:
        version = head[len(FAMILY) :].decode("ascii", "replace").strip()
        raise LayoutError(
            f"out-of-band pickle layout {version!r} is not one this resultkit reads (v1); "
            "upgrade resultkit to read it"
        )
    if size < len(HEADER) + _FOOTER.size:
        raise LayoutError(f"out-of-band pickle of {size} bytes is truncated: no room for a footer")
    pickled, count, magic = _FOOTER.unpack(view[size - _FOOTER.size :])
    if magic != _FOOTER_MAGIC:
        raise LayoutError(
            "out-of-band pickle has no footer (its last 8 bytes are not b'RKOOBEND'): "
            "the payload is truncated or damaged"
        )
    table_end = size - _FOOTER.size
    if count > (table_end - len(HEADER)) // _ENTRY.size:
        raise LayoutError(
            f"out-of-band pickle footer claims {count} buffers; a {size}-byte payload holds "
            "no table that long"
        )
    table_start = table_end - count * _ENTRY.size
    pickle_end = len(HEADER) + pickled
    if pickle_end > table_start:
        raise LayoutError(
            f"out-of-band pickle footer claims a pickle stream of {pickled} bytes; only "
            f"{table_start - len(HEADER)} bytes lie between the header and the buffer table"
        )
    buffers = []
    floor = pickle_end
    for i, (offset, length) in enumerate(_ENTRY.iter_unpack(view[table_start:table_end])):
        if offset % ALIGN or offset < floor or offset + length > table_start:
            raise LayoutError(
                f"out-of-band pickle buffer {i} claims bytes {offset}..{offset + length}; "
                f"buffers lie in order between {pickle_end} and {table_start}, "
                f"each at a multiple of {ALIGN}, without overlap"
            )
        buffers.append(view[offset : offset + length])
        floor = offset + length
    return view[len(HEADER) : pickle_end], buffers


def counted(buffers: list[Any], used: list[int]) -> Iterator[Any]:
    """``buffers`` one by one, counting in ``used[0]`` how many the unpickler took."""
    for buf in buffers:
        used[0] += 1
        yield buf
