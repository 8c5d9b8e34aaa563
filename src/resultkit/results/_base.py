"""The abstract :class:`Result`: a value, where it lives, and how it is encoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..serializers import PickleSerializer, Serializer
from ._location import FormattedLocation, LocationTemplate, default_location, render_location

if TYPE_CHECKING:
    from ._record import Record

__all__ = ["Result"]

R = TypeVar("R", bound="Result")


class Result:
    """A value, the location it is (or will be) stored at, and its serializer.

    ``Result`` objects are templates: :meth:`write`, :meth:`read` and
    :meth:`format` return *new* Results and never change the one they are
    called on, so one Result can serve many tasks and threads.

    All four location methods take the same arguments: an optional location
    (a template string or callable; the Result's own ``location`` when
    omitted) and template keywords. A location is formatted exactly once;
    the location of a returned Result is canonical (a full URL) and is not
    formatted again when passed back to :meth:`read` or :meth:`exists`.

    Subclasses implement the storage hooks ``_resolve``, ``_exists``,
    ``_write`` and ``_read``.
    """

    def __init__(
        self,
        value: Any = None,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        if serializer is not None and not isinstance(serializer, Serializer):
            from ..errors import ConfigurationError

            raise ConfigurationError(
                f"serializer must be a resultkit Serializer, got {type(serializer).__name__}; "
                "e.g. serializer=JSONSerializer()"
            )
        self.value = value
        self.location = location
        self.serializer: Serializer = serializer or PickleSerializer()
        #: The integrity record of the stored payload, after a read or write.
        self.record: Record | None = None

    # -- public API -----------------------------------------------------------
    def format(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Return a copy whose location is formatted with ``kwargs`` (canonical URL).

        Example:
            >>> r = MemoryResult(location="{task_name}.pkl")          # doctest: +SKIP
            >>> r.format(task_name="clean").location                  # doctest: +SKIP
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

    def write(self: R, value: Any, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Store ``value`` and return a new Result holding it and its canonical location.

        The write is atomic: a concurrent reader sees the old payload, the new
        one, or nothing. ``self`` is not changed.
        """
        new = self.copy()
        new.location = self._canonical_location(location, kwargs)
        new.value = value
        new.record = new._write(new.location, value)
        return new

    def read(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Load the value stored at ``location`` and return a new Result holding it.

        Raises :class:`~resultkit.errors.ResultNotFoundError`,
        :class:`~resultkit.errors.ResultCorruptError` or
        :class:`~resultkit.errors.SerializerMismatchError`; never returns a
        value that does not match what was written.
        """
        new = self.copy()
        new.location = self._canonical_location(location, kwargs)
        new.value, new.record = new._read(new.location)
        return new

    def exists(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Return whether something is stored at ``location``; never downloads it."""
        return self._exists(self._canonical_location(location, kwargs))

    def exists_many(self, locations: Sequence[LocationTemplate]) -> list[bool]:
        """``exists`` for many (already formatted) locations at once.

        Backends answer in bulk (one listing per folder) instead of one
        request per location; the runner uses it for mapped targets.
        """
        canonical = [self._canonical_location(loc, {}) for loc in locations]
        return self._exists_many(canonical)

    def _exists_many(self, locations: list[FormattedLocation]) -> list[bool]:
        return [self._exists(loc) for loc in locations]

    def copy(self: R) -> R:
        """A shallow copy (the value and the filesystem client are shared, not copied)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    # -- hooks for subclasses ----------------------------------------------
    def _canonical_location(
        self, location: LocationTemplate | None, keys: Mapping[str, Any]
    ) -> FormattedLocation:
        template = location if location is not None else self.location
        if template is None:
            template = default_location
        if isinstance(template, FormattedLocation):
            return template
        return FormattedLocation(self._resolve(render_location(template, keys)))

    def _resolve(self, location: str) -> str:
        """Check a formatted location and return its canonical form."""
        raise NotImplementedError

    def _exists(self, location: str) -> bool:
        raise NotImplementedError

    def _write(self, location: str, value: Any) -> Record | None:
        raise NotImplementedError

    def _read(self, location: str) -> tuple[Any, Record | None]:
        raise NotImplementedError

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
