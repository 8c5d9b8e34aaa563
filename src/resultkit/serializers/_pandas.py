"""Pandas data frames in the file formats other tools read (parquet, csv...)."""

from __future__ import annotations

import inspect
import io
from typing import Any

from ..errors import ConfigurationError
from ._base import Serializer
from ._checks import check_call_kwargs, did_you_mean

__all__ = ["PandasSerializer"]

# file type -> (DataFrame writer method, pandas reader function, binary?)
_FORMATS: dict[str, tuple[str, str, bool]] = {
    "parquet": ("to_parquet", "read_parquet", True),
    "feather": ("to_feather", "read_feather", True),
    "orc": ("to_orc", "read_orc", True),
    "pickle": ("to_pickle", "read_pickle", True),
    "csv": ("to_csv", "read_csv", False),
    "json": ("to_json", "read_json", False),
}


class PandasSerializer(Serializer):
    """Serializes a ``pandas.DataFrame`` as parquet, feather, orc, pickle, csv or json.

    The stored bytes are exactly what pandas writes, so other tools can open
    them (``pandas.read_parquet(path)`` works on a parquet target).

    Args:
        file_type: one of ``parquet``, ``feather``, ``orc``, ``pickle``,
            ``csv``, ``json``.
        serialize_kwargs: passed to ``DataFrame.to_<file_type>``.
        deserialize_kwargs: passed to ``pandas.read_<file_type>``.

    Example:
        >>> s = PandasSerializer("csv", serialize_kwargs={"index": False})
    """

    def __init__(
        self,
        file_type: str,
        deserialize_kwargs: dict[str, Any] | None = None,
        serialize_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if file_type not in _FORMATS:
            raise ConfigurationError(
                f"PandasSerializer does not know file_type {file_type!r}"
                f"{did_you_mean(file_type, _FORMATS)}; "
                f"valid ones are: {', '.join(sorted(_FORMATS))}"
            )
        self.file_type = file_type
        self.serialize_kwargs = dict(serialize_kwargs or {})
        self.deserialize_kwargs = dict(deserialize_kwargs or {})
        self.name = f"pandas:{file_type}"
        if self.serialize_kwargs or self.deserialize_kwargs:
            # A typo would otherwise surface at the first write, or worse, the first read.
            pd = self._pandas()
            writer, reader, _ = _FORMATS[file_type]
            check_call_kwargs(
                "PandasSerializer",
                "serialize_kwargs",
                f"DataFrame.{writer}",
                getattr(pd.DataFrame, writer),
                self.serialize_kwargs,
                ("self", _first_parameter(getattr(pd.DataFrame, writer), 1)),
            )
            check_call_kwargs(
                "PandasSerializer",
                "deserialize_kwargs",
                f"pandas.{reader}",
                getattr(pd, reader),
                self.deserialize_kwargs,
                (_first_parameter(getattr(pd, reader), 0),),
            )

    @staticmethod
    def _pandas() -> Any:
        try:
            import pandas
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "PandasSerializer needs pandas and pyarrow: pip install 'resultkit[pandas]'"
            ) from exc
        return pandas

    def serialize(self, value: Any) -> bytes:
        pd = self._pandas()
        if not isinstance(value, pd.DataFrame):
            raise self._fail("serialize", value, TypeError("expected a pandas.DataFrame"))
        writer, _, binary = _FORMATS[self.file_type]
        try:
            if binary:
                buf = io.BytesIO()
                getattr(value, writer)(buf, **self.serialize_kwargs)
                return buf.getvalue()
            text = getattr(value, writer)(None, **self.serialize_kwargs)
            return str(text).encode("utf-8")
        except Exception as exc:
            raise self._fail("serialize", value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        pd = self._pandas()
        _, reader, binary = _FORMATS[self.file_type]
        try:
            source: Any = io.BytesIO(data) if binary else io.StringIO(bytes(data).decode("utf-8"))
            return getattr(pd, reader)(source, **self.deserialize_kwargs)
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc


def _first_parameter(fn: Any, index: int) -> str:
    """The name of ``fn``'s parameter at ``index`` (the file argument), for messages."""
    try:
        return list(inspect.signature(fn).parameters)[index]
    except (TypeError, ValueError, IndexError):
        return "path"
