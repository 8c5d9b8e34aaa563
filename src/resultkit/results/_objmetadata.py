"""An integrity record as an object's own user metadata (S3, GCS, Azure).

Names are ``rk-<name>`` (``rk_<name>`` on Azure, where names must be C#
identifiers) plus a marker ``rk``; values that are not plain ASCII tokens
are percent-encoded behind a ``~``. The whole record stays well under S3's
2 KiB limit for user metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from ._record import PREVIOUS_KEY
from .storage import Metadata

__all__ = ["encode_metadata", "decode_metadata", "create_nonce", "CREATE_NONCE", "METADATA_MARKER"]

#: Metadata name present on every object written with its record as metadata.
METADATA_MARKER = "rk"
#: Metadata name of a conditional create's nonce (``ObjectStoreStorage.put_if_absent``):
#: not part of any record, so a marker still reads as an object without one.
CREATE_NONCE = "create_nonce"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# Values sent as they are: header-safe printable ASCII, no '~' (the escape) or '%'.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:+/=@,-]+\Z")
_ESCAPE = "~"


def _encode_value(value: str) -> str:
    if _PLAIN_VALUE.match(value):
        return value
    return _ESCAPE + quote(value, safe="")


def _decode_value(value: str) -> str:
    if value.startswith(_ESCAPE):
        return unquote(value[len(_ESCAPE) :], errors="replace")
    return value


def encode_metadata(metadata: Metadata, separator: str = "-", limit: int = 2048) -> dict[str, str]:
    """A record as object metadata: ``{"rk": "1", "rk-digest": ..., "rk-written-at": ...}``.

    Names must be lowercase identifiers (``[a-z][a-z0-9_]*``: S3 lowercases
    names, Azure wants C# identifiers); ``_`` becomes ``separator``. Values
    that are not plain ASCII tokens (a serializer's name in any script, a
    space) are sent as ``~`` + percent-encoded UTF-8. The ``previous`` entry
    of a two-object record is dropped: one object needs none. ``ValueError``
    when a name is not allowed or the whole exceeds ``limit`` bytes.
    """
    out = {METADATA_MARKER: "1"}
    prefix = METADATA_MARKER + separator
    for name, value in metadata.items():
        if name == PREVIOUS_KEY:
            continue
        if not _NAME.match(name):
            raise ValueError(
                f"metadata name {name[:40]!r} cannot be object metadata: use lowercase "
                "letters, digits and '_' (starting with a letter)"
            )
        out[prefix + name.replace("_", separator)] = _encode_value(str(value))
    size = sum(len(k) + len(v) for k, v in out.items())
    if size > limit:
        raise ValueError(
            f"the integrity record is {size} bytes as object metadata, more than the "
            f"{limit} an object store accepts; use a serializer with a shorter name"
        )
    return out


def decode_metadata(raw: Mapping[str, str] | None, separator: str = "-") -> dict[str, str] | None:
    """The record in an object's metadata, or ``None`` when the object carries none."""
    if not raw:
        return None
    lowered = {str(k).lower(): str(v) for k, v in raw.items()}
    if METADATA_MARKER not in lowered:
        return None
    prefix = METADATA_MARKER + separator
    nonce = _nonce_name(separator)
    return {
        name[len(prefix) :].replace(separator, "_"): _decode_value(value)
        for name, value in lowered.items()
        if name.startswith(prefix) and name != nonce
    }


def _nonce_name(separator: str) -> str:
    """The metadata name :data:`CREATE_NONCE` is sent under (as every record entry is)."""
    return METADATA_MARKER + separator + CREATE_NONCE.replace("_", separator)


def create_nonce(raw: Mapping[str, str] | None, separator: str = "-") -> str | None:
    """The nonce a conditional create stored in an object's metadata, or ``None``."""
    name = _nonce_name(separator)
    for key, value in (raw or {}).items():
        if str(key).lower() == name:
            return _decode_value(str(value))
    return None
