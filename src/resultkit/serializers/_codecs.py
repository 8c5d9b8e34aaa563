"""The compression formats CompressedSerializer knows: levels, writers, decoders."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ._base import WritableStream
from ._checks import did_you_mean

__all__ = ["FORMATS", "Codec", "codec"]


@dataclass(frozen=True)
class Codec:
    """One compression format: its valid levels and how to stream and decode it."""

    name: str
    #: Lowest and highest valid ``level`` (inclusive).
    low: int
    high: int
    #: The keyword for the level in the module's ``compress()`` (Prefect 1 passed
    #: ``compress_kwargs`` there), e.g. ``compresslevel`` for gzip.
    level_keyword: str
    #: What the range means, for messages.
    scale: str
    #: Extra advice when a level is refused.
    advice: str = ""
    #: The package that provides it, when not the standard library.
    package: str = ""

    def check_level(self, level: object) -> None:
        """Raise :class:`ConfigurationError` unless ``level`` is valid for this format."""
        if level is None:
            return
        where = f"CompressedSerializer(format={self.name!r})"
        if isinstance(level, bool) or not isinstance(level, int):
            raise ConfigurationError(
                f"{where} takes an integer level from {self.low} to {self.high} "
                f"({self.scale}), got {level!r}; or leave level=None for the format's default"
            )
        value = level & ~lzma.PRESET_EXTREME if self.name == "lzma" and level > 0 else level
        if not self.low <= value <= self.high:
            raise ConfigurationError(
                f"{where} takes level {self.low} to {self.high} ({self.scale}), got {level}"
                f"{self.advice}; or leave level=None for the format's default"
            )

    def module(self) -> Any:
        """The optional package behind ``zstd``/``lz4``; fails naming the extra to install."""
        try:
            if self.name == "zstd":
                import zstandard

                return zstandard
            if self.name == "lz4":
                import lz4.frame

                return lz4.frame
        except ImportError as exc:
            raise ConfigurationError(
                f"CompressedSerializer(format={self.name!r}) needs the {self.package} "
                "package: pip install 'resultkit[compression]'"
            ) from exc
        return None

    def writer(self, raw: Any, level: int | None) -> Any:
        """A write-only stream that compresses into ``raw``; ``close()`` flushes, leaves raw open."""
        fmt = self.name
        if fmt == "zlib":
            return _ZlibWriter(raw, -1 if level is None else level)
        if fmt == "gzip":
            return gzip.GzipFile(
                fileobj=raw, mode="wb", compresslevel=9 if level is None else level, mtime=0
            )
        if fmt == "bz2":
            return bz2.BZ2File(raw, "wb", compresslevel=9 if level is None else level)
        if fmt == "lzma":
            return lzma.LZMAFile(raw, "wb", preset=level)
        if fmt == "zstd":
            cctx = self.module().ZstdCompressor(level=3 if level is None else level)
            return cctx.stream_writer(raw, closefd=False)
        return self.module().LZ4FrameFile(
            raw, "wb", compression_level=0 if level is None else level, auto_flush=False
        )

    def decoder(self) -> Callable[[bytes], bytes]:
        """The function that turns this format's bytes back into the inner payload."""
        fmt = self.name
        if fmt == "zstd":
            dctx = self.module().ZstdDecompressor()
            return lambda data: dctx.stream_reader(data).read()
        if fmt == "lz4":
            return self.module().decompress
        decoders: dict[str, Callable[[bytes], bytes]] = {
            "zlib": zlib.decompress,
            "gzip": gzip.decompress,
            "bz2": bz2.decompress,
            "lzma": lzma.decompress,
        }
        return decoders[fmt]


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


_NO_STORE = (
    ": bz2 cannot store uncompressed. Use level=1 for the fastest bz2, "
    "or format='zlib' or 'gzip' with level=0 for no compression"
)

FORMATS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("zlib", -1, 9, "level", "0 = no compression, 9 = smallest, -1 = zlib's default"),
        Codec("gzip", 0, 9, "compresslevel", "0 = no compression, 9 = smallest"),
        Codec("bz2", 1, 9, "compresslevel", "1 = fastest, 9 = smallest", _NO_STORE),
        Codec(
            "lzma",
            0,
            9,
            "preset",
            "0 = fastest, 9 = smallest; may be combined with lzma.PRESET_EXTREME",
        ),
        Codec(
            "zstd",
            -131072,
            22,
            "level",
            "negative = fastest, 22 = smallest",
            package="zstandard",
        ),
        Codec(
            "lz4",
            0,
            16,
            "compression_level",
            "0 = lz4's default fast mode, 3 to 16 = high compression",
            package="lz4",
        ),
    )
}

# Names people reach for that are not ours, and the format they mean.
_ALIASES = {"gz": "gzip", "bzip2": "bz2", "xz": "lzma", "zstandard": "zstd", "deflate": "zlib"}


def codec(fmt: object) -> Codec:
    """The :class:`Codec` for a format name; a clear error (with the fix) for anything else."""
    if isinstance(fmt, str) and fmt in FORMATS:
        found = FORMATS[fmt]
        found.module()  # fail at construction, not at the first write
        return found
    valid = ", ".join(FORMATS)
    if isinstance(fmt, str):
        hint = (
            f" (did you mean {_ALIASES[fmt.lower()]!r}?)"
            if fmt.lower() in _ALIASES
            else did_you_mean(fmt, FORMATS)
        )
        raise ConfigurationError(
            f"CompressedSerializer does not know format {fmt!r}{hint}; valid ones are: {valid}. "
            "For another library pass compress=/decompress= callables instead."
        )
    name = getattr(fmt, "__name__", "")
    if name in FORMATS:
        fix = f"pass the name, format={name!r}"
    elif callable(getattr(fmt, "compress", None)) and callable(getattr(fmt, "decompress", None)):
        fix = f"pass compress={name}.compress, decompress={name}.decompress"
    else:
        fix = f"pass one of: {valid}"
    raise ConfigurationError(
        f"CompressedSerializer(format=...) takes a format name, got {type(fmt).__name__} "
        f"{fmt!r}; {fix}"
    )
