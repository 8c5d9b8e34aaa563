"""ConstantResult: a value known in advance, never stored anywhere."""

from __future__ import annotations

from typing import Any

from ..errors import ResultError
from ._base import Result
from ._location import FormattedLocation, LocationTemplate
from ._record import Record

__all__ = ["ConstantResult"]


class ConstantResult(Result):
    """Holds a constant value; reading returns it, it always exists, writing is refused.

    The runner uses it for constants and parameters passed to tasks.

    Example:
        >>> ConstantResult(42).read().value
        42
    """

    def __init__(self, value: Any = None, location: LocationTemplate | None = None, **_: Any):
        super().__init__(value=value, location=location)

    def _canonical_location(self, location: Any, keys: Any) -> FormattedLocation:
        return FormattedLocation("constant://")

    def _exists(self, location: str) -> bool:
        return True

    def _read(self, location: str) -> tuple[Any, Record | None]:
        return self.value, None

    def _write(self, location: str, value: Any) -> Record | None:
        raise ResultError(
            "a ConstantResult cannot be written: its value is fixed. Use MemoryResult or "
            "LocalResult to store values.",
            location=location,
        )

    def __repr__(self) -> str:
        return f"ConstantResult(value={self.value!r})"
