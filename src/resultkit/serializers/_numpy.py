"""NumpySerializer: one numpy array as a standard ``.npy`` file, read in place."""

from __future__ import annotations

import io
from typing import Any

from ._base import Serializer, WritableStream
from ._buffers import MAP_FROM, anonymous_buffer

__all__ = ["NumpySerializer"]

# A .npy header is padded so the data starts at a multiple of this (numpy's ARRAY_ALIGN).
_HEADER_MAX = 1 << 16


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - numpy is there wherever arrays are
        raise ImportError("NumpySerializer needs numpy: pip install numpy") from exc
    return numpy


class NumpySerializer(Serializer):
    """Stores one numpy array as a ``.npy`` file (``numpy.load`` opens the payload).

    Writes the header and then the array's own memory, without a copy when
    the array is contiguous (C or Fortran order; others are made contiguous
    first). Reads are verified like every read, then the array is made *in*
    the buffer its bytes were read into: no copy after the read. Arrays of
    Python objects (``dtype=object``, or a structured dtype holding one)
    are refused: ``.npy`` would pickle them, and loading a pickle is what
    this format avoids; use :class:`PickleSerializer` for those.

    Example:
        >>> import numpy as np
        >>> s = NumpySerializer()
        >>> s.deserialize(s.serialize(np.arange(3))).tolist()
        [0, 1, 2]
    """

    name = "numpy"

    def _check(self, value: Any) -> Any:
        np = _numpy()
        if type(value) is not np.ndarray:
            kind = "a subclass of numpy.ndarray" if isinstance(value, np.ndarray) else "not one"
            raise self._fail(
                "serialize",
                value,
                TypeError(
                    f"NumpySerializer stores a numpy.ndarray; {type(value).__name__} is {kind} "
                    "(pass numpy.asarray(value), or use PickleSerializer)"
                ),
            )
        if value.dtype.hasobject:
            raise self._fail(
                "serialize",
                value,
                TypeError(
                    f"dtype {value.dtype} holds Python objects, which .npy can only pickle; "
                    "use PickleSerializer for this array"
                ),
            )
        return np

    def dump(self, value: Any, stream: WritableStream) -> None:
        np = self._check(value)
        fmt = np.lib.format
        header = fmt.header_data_from_array_1_0(value)
        head = io.BytesIO()
        try:
            fmt.write_array_header_1_0(head, header)
        except ValueError:  # a header over 64 KB (thousands of fields): format 2.0
            head = io.BytesIO()
            fmt.write_array_header_2_0(head, header)
        stream.write(head.getbuffer())
        if value.size == 0:
            return
        if header["fortran_order"]:
            data = value.T  # C-contiguous view of the same memory
        elif value.flags.c_contiguous:
            data = value
        else:
            data = np.ascontiguousarray(value)
        stream.write(memoryview(data.reshape(-1).view(np.uint8)))

    def serialize(self, value: Any) -> bytes:
        out = io.BytesIO()
        self.dump(value, out)
        return out.getvalue()

    def allocate(self, size: int) -> Any:
        # No zero-filling. A large buffer gets fresh pages of its own, huge
        # where the kernel allows: measured here, a 100 MB read fills numpy's
        # own buffer (malloc's, not aligned to a huge page) at half the speed.
        if size >= MAP_FROM:
            return anonymous_buffer(size)
        return _numpy().empty(size, dtype="uint8")

    def deserialize(self, data: Any) -> Any:
        np = _numpy()
        try:
            return self._array_in(np, data)
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc

    def _array_in(self, np: Any, data: Any) -> Any:
        fmt = np.lib.format
        buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        head = io.BytesIO(buf[:_HEADER_MAX].tobytes())
        version = fmt.read_magic(head)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(head, max_header_size=_HEADER_MAX)
        if dtype.hasobject:
            raise ValueError(f"the payload holds an array of dtype {dtype} (Python objects)")
        offset = head.tell()
        count = 1
        for n in shape:
            count *= n
        if buf.nbytes - offset != count * dtype.itemsize:
            raise ValueError(
                f"the header says {count} items of {dtype.itemsize} bytes; "
                f"{buf.nbytes - offset} bytes follow it"
            )
        body = buf[offset:]
        if not buf.flags.writeable:  # read-only bytes: a writable array of its own
            body = body.copy()
        array = body.view(dtype) if count else np.empty(0, dtype)
        if fortran_order:
            return array.reshape(shape[::-1]).T
        return array.reshape(shape)
