"""S3's ranged GETs of one version (s3fs), for ``_ranged.RangedReader``."""

from __future__ import annotations

from typing import Any

from ._errors import precondition_failed
from ._ranged import ReplacedWhileRead

__all__ = ["s3_range_fetcher"]


def s3_range_fetcher(fs: Any, bucket: str, key: str, etag: str, body: Any) -> Any:
    """Ranges of the version ``etag``; the first from ``body``, the opening GET's."""
    opened = [body]

    def release() -> None:
        if opened:  # never read: its connection is dropped, not reused
            opened.pop().close()

    async def fetch(start: int, end: int) -> bytes:
        if opened and start == 0:
            first = opened.pop()
            try:
                chunks, got = [], 0
                while got < end:
                    chunk = await first.read(end - got)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                return b"".join(chunks)
            finally:
                first.close()  # the rest is fetched by ranges
        try:
            response = await fs._call_s3(
                "get_object",
                fs.kwargs,
                Bucket=bucket,
                Key=key,
                Range=f"bytes={start}-{end - 1}",
                IfMatch=etag,  # 412 once the object was overwritten
            )
        except FileNotFoundError:
            raise ReplacedWhileRead(f"{bucket}/{key} was deleted") from None
        except OSError as exc:
            if precondition_failed(exc):
                raise ReplacedWhileRead(f"{bucket}/{key} was overwritten") from None
            raise
        body = response["Body"]
        try:
            return bytes(await body.read())
        finally:
            body.close()

    fetch.release = release  # type: ignore[attr-defined]
    return fetch
