"""Where a :class:`~resultkit.results.StorageResult`'s locations go: formatted once, checked
against its root, turned into storage keys, and remembered when they have no template fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UnsafeLocationError
from ._location import (
    LOCKS_FOLDER,
    FormattedLocation,
    LocationTemplate,
    check_relative,
    short,
)

if TYPE_CHECKING:
    from .storage import Storage

__all__ = ["Locating"]

#: Checked locations remembered per Result (and its copies).
_LOCATED_MAX = 4096


class Locating:
    """The location methods of a StorageResult (a mixin before :class:`Result`).

    ``_located`` maps a location without template fields (as a canonical URL
    or not) to its canonical form and key; the Result sets it to ``{}`` and
    its copies share it. It is a cache: never pickled.
    """

    storage: Storage
    location: LocationTemplate | None
    _located: dict[tuple[bool, str], tuple[FormattedLocation, str]]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_located", None)  # a cache: rebuilt where the Result lands
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._located = {}

    @property
    def root_url(self) -> str:
        """The URL every location of this Result is under."""
        return self.storage.root_url

    # -- locations ---------------------------------------------------------------
    def _canonical_location(
        self, location: LocationTemplate | None, keys: Mapping[str, Any]
    ) -> FormattedLocation:
        return self._locate(location, keys)[0]

    def _locate(
        self, location: LocationTemplate | None, keys: Mapping[str, Any]
    ) -> tuple[FormattedLocation, str]:
        """The canonical location and its storage key, the location checked once.

        A location without template fields (``"a/b.pkl"``, a canonical URL)
        formats and checks the same way every time: the answer is remembered.
        """
        if keys:
            _refuse_settings(keys)
        template = location if location is not None else self.location
        fixed = None
        if isinstance(template, str) and "{" not in template and "}" not in template:
            # A canonical URL passed back stays as given; the same text as a str is
            # normalised: remembered apart.
            fixed = (isinstance(template, FormattedLocation), template)
            found = self._located.get(fixed)
            if found is not None:
                return found
        key = self._located_key(location, keys)
        if isinstance(template, FormattedLocation) and "://" in template:
            located = (template, key)
        else:
            located = (FormattedLocation(self.storage.url(key)), key)
        if fixed is not None:
            if len(self._located) >= _LOCATED_MAX:
                self._located.clear()
            self._located[fixed] = located
        return located

    def _located_key(self, location: LocationTemplate | None, keys: Mapping[str, Any]) -> str:
        """The storage key of :meth:`_locate`, without building the canonical URL."""
        template = location if location is not None else self.location
        if isinstance(template, FormattedLocation) and "://" in template:
            # A canonical location is checked against this root too.
            return self._key(template)
        return self._key(super()._canonical_location(location, keys))  # type: ignore[misc]

    def storage_key(self, location: LocationTemplate | None = None, **kwargs: Any) -> str:
        """The storage key of a location (formatted and checked like any other)."""
        return self._located_key(location, kwargs)

    def lock_prefix(self, location: LocationTemplate | None = None, **kwargs: Any) -> str:
        """The storage keys under which the single-flight locks of a location live."""
        return f"{LOCKS_FOLDER}/{self.storage_key(location, **kwargs)}/"

    def _key(self, location: str) -> str:
        """The storage key of a formatted location, refusing any outside the root."""
        if "://" in location:
            key = self.storage.key_of(location)
            if key is None:
                raise UnsafeLocationError(
                    f"location {short(location)!r} is outside this result's root "
                    f"{self.root_url}; pass a location relative to that root",
                    location=location,
                )
            location = key
        return check_relative(location, self.root_url)


# A Result's own settings, which read() / write() / exists() would otherwise
# take for template keys and ignore (``result.read(loc, verify=False)``
# would still verify).
_SETTINGS = frozenset({"verify", "serializer", "fsync", "signing_key", "retries", "dir"})


def _refuse_settings(keys: Mapping[str, Any]) -> None:
    named = sorted(_SETTINGS.intersection(keys))
    if named:
        from ..errors import ConfigurationError

        name = named[0]
        copy = "" if name == "dir" else f", or set it on a copy (r = result.copy(); r.{name} = ...)"
        raise ConfigurationError(
            f"{name}= is a setting of the Result, not a template key of this call: make "
            f"the Result with it (e.g. LocalResult(dir=..., {name}=...)){copy}"
        )
