"""ConstantResult: a value known in advance, never stored anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ResultError
from ..serializers import Serializer
from ._base import Result
from ._location import FormattedLocation, LocationTemplate

__all__ = ["ConstantResult"]

R = TypeVar("R", bound="ConstantResult")


class ConstantResult(Result):
    """Holds a constant value; reading returns it, it always exists, writing is refused.

    The runner uses it for constants and parameters passed to tasks.

    Example:
        >>> ConstantResult(42).read().value
        42
    """

    def __init__(
        self,
        value: Any = None,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(value=value, location=location, serializer=serializer)

    def _canonical_location(self, location: Any, keys: Mapping[str, Any]) -> FormattedLocation:
        return FormattedLocation("constant://")

    def read(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Return a copy holding the constant (nothing is read)."""
        return self.copy()

    def exists(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Always ``True``: the value is known."""
        return True

    def write(self: R, value: Any, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Refused: a ConstantResult's value is fixed."""
        raise ResultError(
            "a ConstantResult cannot be written: its value is fixed. Use MemoryResult or "
            "LocalResult to store values.",
            location="constant://",
        )

    def __repr__(self) -> str:
        return f"ConstantResult(value={self.value!r})"
