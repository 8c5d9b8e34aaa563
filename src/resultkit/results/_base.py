"""The abstract :class:`Result`: a value, where it lives, and how it is encoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._suggest import suggest_keywords
from ..errors import ConfigurationError
from ..serializers import PickleSerializer, Serializer
from ._location import FormattedLocation, LocationTemplate, default_location, render_location

if TYPE_CHECKING:
    from ._record import Record

__all__ = ["Result"]

R = TypeVar("R", bound="Result")

#: What a Prefect-1-style subclass (one that does not sit on a Storage) must implement.
_PREFECT_STYLE_METHODS = ("read", "write", "exists")


class Result:
    """A value, the location it is (or will be) stored at, and its serializer.

    ``Result`` objects are templates: :meth:`write`, :meth:`read` and
    :meth:`format` return *new* Results and never change the one they are
    called on, so one Result can serve many tasks and threads.

    All location methods take the same arguments: an optional location (a
    template string or callable; the Result's own ``location`` when omitted)
    and template keywords. A location is formatted exactly once; the location
    of a returned Result is a :class:`FormattedLocation` and is not formatted
    again when passed back to :meth:`read` or :meth:`exists`.

    Backends subclass :class:`~resultkit.results.StorageResult` over a
    :class:`~resultkit.results.Storage`. A Prefect-1-style subclass that
    overrides :meth:`read`, :meth:`write` and :meth:`exists` itself also
    works with the runner; one that overrides only some of them is refused
    at construction, naming what is missing.

    Example:
        >>> Result(location="{task_name}.txt").format(task_name="clean").location
        'clean.txt'
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = suggest_keywords(cls.__init__)  # type: ignore[method-assign]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is not Result and not getattr(cls, "_implements_storage", False):
            missing = [m for m in _PREFECT_STYLE_METHODS if getattr(cls, m) is getattr(Result, m)]
            if missing:
                raise ConfigurationError(
                    f"{cls.__name__} must implement {', '.join(missing)} (a Prefect-1-style "
                    "Result overrides read, write and exists), or subclass "
                    "resultkit.results.StorageResult and pass it a Storage, which only needs "
                    "byte-level put/get/head/delete/list"
                )
        return super().__new__(cls)

    def __init__(
        self,
        value: Any = None,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        if serializer is not None and not isinstance(serializer, Serializer):
            raise ConfigurationError(
                f"serializer must be a resultkit Serializer, got {type(serializer).__name__}; "
                "e.g. serializer=JSONSerializer()"
            )
        self.value = value
        self.location = location
        self.serializer: Serializer = serializer or PickleSerializer()
        #: The integrity record of the stored payload, after a read or write.
        self.record: Record | None = None

    # -- formatting -----------------------------------------------------------
    def format(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Return a copy whose location is formatted with ``kwargs``.

        Example:
            >>> MemoryResult(location="{task_name}.pkl").format(task_name="clean").location
            'memory:///resultkit/clean.pkl'
        """
        return self.format_map(kwargs, location)

    def format_map(self: R, keys: Mapping[str, Any], location: LocationTemplate | None = None) -> R:
        """Like :meth:`format`, with the template keys in a mapping.

        Use it when a key could collide with an argument name (``location``).
        """
        new = self.copy()
        new.location = self._canonical_location(location, keys)
        return new

    def _canonical_location(
        self, location: LocationTemplate | None, keys: Mapping[str, Any]
    ) -> FormattedLocation:
        """Format ``location`` (or the Result's own) once; storage results also check it."""
        template = location if location is not None else self.location
        if template is None:
            template = default_location
        if isinstance(template, FormattedLocation):
            return template
        return FormattedLocation(render_location(template, keys))

    # -- storage operations (Prefect-1-style subclasses override these) ----------
    def write(self: R, value: Any, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Store ``value`` and return a new Result holding it and its canonical location."""
        raise NotImplementedError(
            f"{type(self).__name__} does not store values; use a StorageResult backend "
            "(LocalResult, S3Result...) or implement write"
        )

    def read(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Load the value stored at ``location`` and return a new Result holding it."""
        raise NotImplementedError(
            f"{type(self).__name__} does not store values; use a StorageResult backend "
            "(LocalResult, S3Result...) or implement read"
        )

    def exists(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Return whether something is stored at ``location``."""
        raise NotImplementedError(
            f"{type(self).__name__} does not store values; use a StorageResult backend "
            "(LocalResult, S3Result...) or implement exists"
        )

    def exists_many(self, locations: Sequence[LocationTemplate]) -> list[bool]:
        """:meth:`exists` for many (already formatted) locations; backends answer in bulk."""
        return [self.exists(loc) for loc in locations]

    # -- values -----------------------------------------------------------------
    def copy(self: R) -> R:
        """A shallow copy (the value and the storage client are shared, not copied)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __eq__(self, other: object) -> bool:
        # Prefect 1 compares Results by value: same kind, value, location, serializer.
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Result)
        try:
            same_value = bool(self.value == other.value)
        except Exception:  # numpy arrays and the like: fall back to identity
            same_value = self.value is other.value
        return (
            same_value
            and self.location == other.location
            and self.serializer == other.serializer
            and self._config_key() == other._config_key()
        )

    __hash__ = object.__hash__  # identity, so Results stay usable as dict keys

    def _config_key(self) -> Any:
        """What else makes two Results of one kind differ (a storage's root...)."""
        return None

    def _location_repr(self) -> Any:
        """The location as shown by ``repr``: a callable by its name."""
        if callable(self.location):
            return getattr(self.location, "__name__", "<callable>")
        return self.location

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(location={self._location_repr()!r}, "
            f"serializer={self.serializer.name!r})"
        )
