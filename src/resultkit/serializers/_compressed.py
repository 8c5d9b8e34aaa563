"""Compression around any other serializer."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from ._base import Serializer, WritableStream
from ._basic import PickleSerializer

__all__ = ["CompressedSerializer"]

_FORMATS = ("zlib", "gzip", "bz2", "lzma", "zstd", "lz4")


class _ZlibWriter:
    """A write-only stream that zlib-compresses into another stream."""

    def __init__(self, raw: WritableStream, level: int) -> None:
        self._raw = raw
        self._c = zlib.compressobj(level)

    def write(self, data: Any) -> int:
        self._raw.write(self._c.compress(data))
        return memoryview(data).nbytes

    def close(self) -> None:
        self._raw.write(self._c.flush())


def _module(fmt: str) -> Any:
    try:
        if fmt == "zstd":
            import zstandard

            return zstandard
        if fmt == "lz4":
            import lz4.frame

            return lz4.frame
    except ImportError as exc:
        raise ConfigurationError(
            f"CompressedSerializer(format={fmt!r}) needs an extra package: "
            "pip install 'resultkit[compression]'"
        ) from exc
    return None


class CompressedSerializer(Serializer):
    """Compresses the bytes of another serializer.

    Args:
        serializer: the inner serializer (default :class:`PickleSerializer`).
        format: ``zlib``, ``gzip``, ``bz2``, ``lzma`` (standard library),
            ``zstd`` or ``lz4`` (``pip install 'resultkit[compression]'``).
        level: compression level; ``None`` takes the format's default.

    Writing streams: the inner serializer writes into the compressor, which
    writes into the file, so a large value is never held twice in memory.

    Example:
        >>> s = CompressedSerializer(PickleSerializer(), format="gzip")
        >>> s.name
        'compressed:gzip/pickle'
    """

    def __init__(
        self,
        serializer: Serializer | None = None,
        format: str = "zlib",
        level: int | None = None,
    ) -> None:
        if format not in _FORMATS:
            raise ConfigurationError(
                f"CompressedSerializer does not know format {format!r}; "
                f"valid ones are: {', '.join(_FORMATS)}"
            )
        if serializer is not None and not isinstance(serializer, Serializer):
            raise ConfigurationError(
                f"CompressedSerializer wraps a Serializer, got {type(serializer).__name__}"
            )
        _module(format)  # fail at construction, not at the first write
        self.serializer = serializer or PickleSerializer()
        self.format = format
        self.level = level
        self.name = f"compressed:{format}/{self.serializer.name}"

    def _writer(self, raw: Any) -> Any:
        fmt, level = self.format, self.level
        if fmt == "zlib":
            return _ZlibWriter(raw, -1 if level is None else level)
        if fmt == "gzip":
            return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level or 9, mtime=0)
        if fmt == "bz2":
            return bz2.BZ2File(raw, "wb", compresslevel=level or 9)
        if fmt == "lzma":
            return lzma.LZMAFile(raw, "wb", preset=level)
        if fmt == "zstd":
            cctx = _module("zstd").ZstdCompressor(level=3 if level is None else level)
            return cctx.stream_writer(raw, closefd=False)
        return _module("lz4").LZ4FrameFile(
            raw, "wb", compression_level=level or 0, auto_flush=False
        )

    def _decompress(self) -> Callable[[bytes], bytes]:
        fmt = self.format
        if fmt == "zlib":
            return zlib.decompress
        if fmt == "gzip":
            return gzip.decompress
        if fmt == "bz2":
            return bz2.decompress
        if fmt == "lzma":
            return lzma.decompress
        if fmt == "zstd":
            dctx = _module("zstd").ZstdDecompressor()
            return lambda data: dctx.stream_reader(data).read()
        return _module("lz4").decompress

    def dump(self, value: Any, stream: WritableStream) -> None:
        writer = self._writer(stream)
        try:
            self.serializer.dump(value, writer)
        finally:
            writer.close()  # flushes the compressor's tail; leaves `stream` open

    def serialize(self, value: Any) -> bytes:
        import io

        buf = io.BytesIO()
        self.dump(value, buf)
        return buf.getvalue()

    def deserialize(self, data: bytes) -> Any:
        try:
            raw = self._decompress()(bytes(data))
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc
        return self.serializer.deserialize(raw)
