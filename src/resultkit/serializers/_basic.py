"""JSON and datetime serializers (PickleSerializer lives in ``_pickle``, re-exported here)."""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import uuid
from typing import Any

from ..errors import ConfigurationError
from ._base import Serializer
from ._buffers import anonymous_buffer
from ._pickle import PickleSerializer

__all__ = ["PickleSerializer", "JSONSerializer", "DateTimeSerializer", "anonymous_buffer"]


_TAG = "__resultkit_type__"


def _encode_extra(obj: Any) -> Any:
    # json calls this only for objects it cannot encode itself.
    if isinstance(obj, _dt.datetime):
        return {_TAG: "datetime", "value": obj.isoformat()}
    if isinstance(obj, _dt.date):
        return {_TAG: "date", "value": obj.isoformat()}
    if isinstance(obj, _dt.time):
        return {_TAG: "time", "value": obj.isoformat()}
    if isinstance(obj, _dt.timedelta):
        return {_TAG: "timedelta", "value": obj.total_seconds()}
    if isinstance(obj, decimal.Decimal):
        return {_TAG: "decimal", "value": str(obj)}
    if isinstance(obj, uuid.UUID):
        return {_TAG: "uuid", "value": str(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return {_TAG: "bytes", "value": base64.b64encode(obj).decode("ascii")}
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_DECODERS = {
    "datetime": _dt.datetime.fromisoformat,
    "date": _dt.date.fromisoformat,
    "time": _dt.time.fromisoformat,
    "timedelta": lambda v: _dt.timedelta(seconds=float(v)),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytes": base64.b64decode,
}


def _escape(value: Any) -> Any:
    """``value`` with every dict that has a key named like our tag stored as tagged pairs.

    Without it a user's ``{"__resultkit_type__": "date", "value": ...}`` would
    read back as a date: user data must never be taken for our tags.
    """
    if isinstance(value, dict):
        items = {k: _escape(v) for k, v in value.items()}
        if _TAG in value:
            return {_TAG: "dict", "value": [[k, v] for k, v in items.items()]}
        return items
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    return value


def _decode_extra(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and _TAG in obj and "value" in obj:
        tag = obj[_TAG]
        if tag == "dict" and isinstance(obj["value"], list):
            return {k: v for k, v in obj["value"]}
        if isinstance(tag, str) and tag in _DECODERS:
            return _DECODERS[tag](obj["value"])
    return obj


class JSONSerializer(Serializer):
    """Serializes JSON-compatible values as UTF-8 JSON.

    Besides what JSON itself holds, these round-trip exactly: ``datetime``
    (with its time zone), ``date``, ``time``, ``timedelta``, ``Decimal``,
    ``UUID`` and ``bytes`` (stored as small tagged objects). JSON has no tuple
    or set: tuples come back as lists, sets are refused, and non-string dict
    keys come back as strings.

    Example:
        >>> s = JSONSerializer()
        >>> s.deserialize(s.serialize({"when": _dt.date(2026, 11, 23)}))
        {'when': datetime.date(2026, 11, 23)}
    """

    name = "json"

    def __init__(self, indent: int | str | None = None) -> None:
        if not (indent is None or isinstance(indent, str) or type(indent) is int):
            raise ConfigurationError(
                f"JSONSerializer(indent={indent!r}): indent is a number of spaces, a string "
                "to indent with (e.g. '\\t'), or None for compact JSON"
            )
        self.indent = indent

    def serialize(self, value: Any) -> bytes:
        try:
            text = json.dumps(
                _escape(value), default=_encode_extra, ensure_ascii=False, indent=self.indent
            )
        except Exception as exc:
            raise self._fail("serialize", value, exc) from exc
        return text.encode("utf-8")

    def deserialize(self, data: bytes) -> Any:
        try:
            return json.loads(bytes(data).decode("utf-8"), object_hook=_decode_extra)
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc


class DateTimeSerializer(Serializer):
    """Serializes one ``datetime`` as ISO 8601 text (time zone kept).

    Example:
        >>> s = DateTimeSerializer()
        >>> s.serialize(_dt.datetime(2026, 11, 23, 8, 30))
        b'2026-11-23T08:30:00'
    """

    name = "datetime"

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, _dt.datetime):
            raise self._fail("serialize", value, TypeError("expected a datetime.datetime"))
        return value.isoformat().encode("ascii")

    def deserialize(self, data: bytes) -> Any:
        try:
            return _dt.datetime.fromisoformat(bytes(data).decode("ascii"))
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc
