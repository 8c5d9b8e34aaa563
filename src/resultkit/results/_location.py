"""Location templates: formatting (exactly once) and the safety checks.

A template is a ``str.format`` string (``"{task_name}/{date:%Y-%m-%d}.pkl"``)
or a callable taking the template keywords. Formatting produces a
:class:`FormattedLocation`, which is never formatted again, so a substituted
value that contains braces is stored as written.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import MissingTemplateKeyError, TemplateError, UnsafeLocationError

__all__ = [
    "FormattedLocation",
    "LocationTemplate",
    "render_location",
    "check_relative",
    "default_location",
    "short",
    "RECORD_SUFFIX",
    "TEMP_MARKER",
    "LOCKS_FOLDER",
    "NAME_MAX",
    "temp_stem",
]

LocationTemplate = str | Callable[..., str]

#: Suffix of the integrity record stored beside every payload.
RECORD_SUFFIX = ".rkmeta"
#: Marker in the names of temporary files written before an atomic publish.
TEMP_MARKER = ".rktmp-"
#: The folder under a root where single-flight locks live.
LOCKS_FOLDER = ".rklocks"

#: The longest file name most filesystems take (bytes); a name beside its record has less.
NAME_MAX = 255
#: The longest name a temporary file's stem may take (bytes, UTF-8): the temp name adds
#: a dot, the record suffix, the marker and a 28-character token, and must stay within
#: the NAME_MAX bytes most filesystems allow a name.
_TEMP_STEM_BYTES = NAME_MAX - 1 - len(RECORD_SUFFIX) - len(TEMP_MARKER) - 32

_DRIVE = re.compile(r"^[A-Za-z]:")
_FORMATTER = string.Formatter()


class FormattedLocation(str):
    """A location that has already been formatted; it is never formatted again."""

    __slots__ = ()


def temp_stem(name: str) -> str:
    """``name`` as the stem of its temporary files' names: itself when short enough,
    else its start and a digest of the whole, so that the temp names of any name a
    filesystem accepts (up to 255 bytes) fit in 255 bytes too.

    Two long names sharing a start still get different stems (the digest), and
    a name always gets the same one.

        >>> temp_stem("a.pkl")
        'a.pkl'
        >>> len(temp_stem("x" * 250).encode()) <= _TEMP_STEM_BYTES
        True
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= _TEMP_STEM_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    start = raw[: _TEMP_STEM_BYTES - 17].decode("utf-8", "ignore")  # whole characters only
    return f"{start}~{digest}"


def short(location: str, limit: int = 200) -> str:
    """A location for a message: control characters escaped, long ones truncated."""
    text = (
        location.encode("unicode_escape").decode("ascii")
        if not location.isprintable()
        else location
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_location(**_: Any) -> str:
    """The location used when a Result has none: unique and time-ordered."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"resultkit-{stamp}-{uuid.uuid4().hex}"


def render_location(template: LocationTemplate, keys: Mapping[str, Any]) -> str:
    """Format ``template`` once with ``keys``.

    Raises :class:`MissingTemplateKeyError` naming the missing key and the
    keys that were given, and :class:`TemplateError` for any other problem.
    """
    if isinstance(template, FormattedLocation):
        return str(template)
    if callable(template):
        name = getattr(template, "__name__", repr(template))
        try:
            out = template(**keys)
        except Exception as exc:
            raise TemplateError(
                f"the location callable {name} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, str):
            raise TemplateError(
                f"the location callable {name} returned {type(out).__name__}; it must return a str"
            )
        return out
    if not isinstance(template, str):
        raise TemplateError(
            f"a location must be a str or a callable, got {type(template).__name__}"
        )
    if "{" not in template and "}" not in template:
        return template  # nothing to substitute (the common case for canonical paths)
    try:
        return _FORMATTER.vformat(template, (), _KeysView(keys, template))
    except (MissingTemplateKeyError, TemplateError):
        raise
    except IndexError as exc:
        raise TemplateError(
            f"location template {template!r} has a positional field ('{{}}' or '{{0}}'); "
            "name every field, e.g. '{task_name}', or double the braces for a literal '{{'"
        ) from exc
    except KeyError as exc:  # "{x[k]}": a key missing inside a given value
        raise TemplateError(
            f"location template {template!r} could not be formatted: a value has no key "
            f"{exc.args[0]!r} (the template indexes into it, e.g. '{{x[k]}}')"
        ) from exc
    except (ValueError, AttributeError, TypeError) as exc:
        raise TemplateError(
            f"location template {template!r} could not be formatted: {exc}"
        ) from exc


class _KeysView(Mapping[str, Any]):
    """Mapping used while formatting, so a missing key gets a helpful error."""

    def __init__(self, keys: Mapping[str, Any], template: str) -> None:
        self._keys = keys
        self._template = template

    def __getitem__(self, key: str) -> Any:
        try:
            return self._keys[key]
        except KeyError:
            given = sorted(str(k) for k in self._keys)
            raise MissingTemplateKeyError(
                f"location template {self._template!r} needs the key {key!r}, which was not "
                f"given; keys given: {given or 'none'}. Pass {key}=... (or double the braces, "
                f"'{{{{{key}}}}}', for a literal brace).",
                key=key,
                given=given,
                location=self._template,
            ) from None

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


#: Locations longer than this are checked every time instead of remembered, so
#: the cache of checked locations stays bounded in bytes (8192 x 512).
_CACHED_LENGTH = 512
# C0 and C1 controls, line and paragraph separators, and bidirectional overrides
# (which can forge or disguise a log line).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Longer locations are refused (no filesystem or object store takes them).
MAX_LOCATION = 4096


def check_relative(location: str, root_description: str) -> str:
    """Return ``location`` normalised, or refuse it if it could leave the root.

    Refused: empty locations, control characters (NUL, newline, ESC...),
    absolute paths (``/x``, ``\\\\x``), drive letters (``C:``), ``..``
    components, locations naming a folder (trailing ``/``) and, in any
    component and any letter case, the names resultkit reserves for its own
    files (``*.rkmeta``, ``*.rktmp-*``).
    """
    if len(location) > _CACHED_LENGTH:
        return _check_relative(location, root_description)
    return _check_relative_cached(location, root_description)


def _check_relative(location: str, root_description: str) -> str:
    def refuse(why: str) -> UnsafeLocationError:
        return UnsafeLocationError(
            f"location {short(location)!r} is refused: {why}. Locations are relative to the "
            f"result's root ({root_description}); check the template and the values "
            "substituted into it.",
            location=location,
        )

    if not location:
        raise refuse("it is empty")
    if "\x00" in location:
        raise refuse("it contains a NUL byte")
    if _CONTROL.search(location):
        raise refuse(
            "it contains a control character (a newline, tab, ESC, a line separator or a "
            "bidirectional override)"
        )
    if len(location) > MAX_LOCATION:
        raise refuse(f"it is longer than {MAX_LOCATION} characters")
    if location.startswith(("/", "\\")):
        raise refuse("it is an absolute path")
    if _DRIVE.match(location):
        raise refuse("it starts with a drive letter")
    if "://" in location:
        raise refuse("it is a URL of another storage")
    if location.endswith(("/", "\\")):
        raise refuse("it names a folder, not an object")
    parts = [p for p in re.split(r"[/\\]", location) if p not in ("", ".")]
    if ".." in parts:
        raise refuse("it contains a '..' component")
    if not parts:
        raise refuse("it names the root itself")
    if parts[0].lower() == LOCKS_FOLDER:
        raise refuse(f"the folder {LOCKS_FOLDER!r} is reserved for resultkit's locks")
    for part in parts:
        lowered = part.lower()
        if lowered.endswith(RECORD_SUFFIX) or TEMP_MARKER in lowered:
            raise refuse(
                f"names ending in {RECORD_SUFFIX!r} or containing {TEMP_MARKER!r} (in any "
                "letter case, in any folder of the path) are reserved for resultkit's own files"
            )
    return "/".join(parts)


_check_relative_cached = functools.lru_cache(maxsize=8192)(_check_relative)
