"""Memory for payloads read in place: aligned buffers and fresh anonymous pages.

Shared by the serializers that read large payloads straight into memory of
their own (``PickleSerializer``'s out-of-band buffers, ``NumpySerializer``).
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

__all__ = ["MAP_FROM", "aligned_buffer", "anonymous_buffer"]

#: Buffers of at least this many bytes are mapped (see ``anonymous_buffer``):
#: measured, below this malloc's reused memory beats new pages.
MAP_FROM = 4 << 20


def aligned_buffer(size: int, align: int) -> memoryview:
    """A writable ``size``-byte view of a bytearray, starting at a multiple of ``align``.

    Example:
        >>> import ctypes
        >>> view = aligned_buffer(100, 64)
        >>> len(view), ctypes.addressof(ctypes.c_char.from_buffer(view)) % 64
        (100, 0)
    """
    raw = bytearray(size + align)
    probe = ctypes.c_char.from_buffer(raw)
    start = -ctypes.addressof(probe) % align
    del probe  # releases its export of ``raw``
    return memoryview(raw)[start : start + size]


def anonymous_buffer(size: int) -> Any:
    """A writable buffer of ``size`` bytes in fresh private pages (huge pages if allowed).

    Example:
        >>> buf = anonymous_buffer(1 << 20)
        >>> len(buf), buf[:4] == bytes(4)
        (1048576, True)
    """
    import mmap

    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    hugepage = getattr(mmap, "MADV_HUGEPAGE", None)
    if hugepage is not None:
        with contextlib.suppress(OSError):
            buf.madvise(hugepage)
    return buf
