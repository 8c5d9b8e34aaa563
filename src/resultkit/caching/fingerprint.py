"""Code fingerprints: a token for a task's code, so a cache is invalidated when the code changes.

:func:`code_fingerprint` follows a function (or class) and everything of the
user's own code it reaches, and returns a :class:`CodeFingerprint`: one
token, and the token of each component by the path that reached it
(``clean``, ``clean -> helpers.normalise``, ``clean -> THRESHOLD``), so a
miss can say *what* changed. What counts:

- a function's body: bytecode, constants, names, argument layout, default
  values; not its file, line numbers, comments, formatting or docstring;
- the values of its closure cells and of the module globals it reads
  (``helpers.normalise`` and ``CONFIG.path`` follow the attribute chain
  through modules);
- transitively, the functions and classes those lead to (a class by all its
  methods and attributes), and modules imported in the body;
- library code (the standard library, site-packages, resultkit) by its
  package version (``numpy 2.1.0``), never by its code; the Python minor
  version, since bytecode differs between them.

What is not followed: names reached dynamically (``getattr(m, name)``,
``importlib.import_module``, ``eval``), attributes of ``self`` beyond the
class's own methods, and a global changed in place (not reassigned) within
one process: tokens of values are cached per object. Fail-closed: a
component that cannot be fingerprinted (a C extension of your own, an
unpicklable global) is warned about once and gets a token unique to this
process, so it counts as changed in every new process. ``code_version=`` on
the task replaces the fingerprint when you want manual control.

Deterministic across processes (no ids, sets sorted, hash-seed free) and
cheap after the first call: each code object is analysed once, each
global's value tokenized once per object.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ._codetoken import Unfingerprintable
from ._walk import Read, Walk, unchanged

__all__ = ["CodeFingerprint", "code_fingerprint", "Unfingerprintable"]


@dataclass(frozen=True)
class CodeFingerprint:
    """A token for some code, and the token of each component it was made of.

    Attributes:
        token: equal exactly when every component is.
        components: path -> token (``"clean -> helpers.normalise"``).
        kinds: path -> ``"code"``, ``"global"``, ``"closure"``, ``"package"``,
            ``"module"`` or ``"unfollowed"`` (failed closed).

    Example:
        >>> def double(x):
        ...     return 2 * x
        >>> code_fingerprint(double).token == code_fingerprint(double).token
        True
    """

    token: str
    components: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)

    def changed_from(self, before: Mapping[str, str]) -> list[str]:
        """The paths whose token differs from ``before`` (added or removed ones too)."""
        keys = list(self.components) + [k for k in before if k not in self.components]
        return [k for k in keys if self.components.get(k) != before.get(k)]


def code_fingerprint(
    obj: Any, name: str | None = None, state: Mapping[str, Any] | None = None
) -> CodeFingerprint:
    """The fingerprint of ``obj`` (a function, method, class, ``functools.partial``
    or callable object) and of the user code it reaches; ``name`` names the root.
    ``state`` adds values that configure it (a ``Task`` subclass's own attributes,
    as ``<root> -> self.<name>``).

    Example:
        >>> LIMIT = 3
        >>> def clip(x):
        ...     return min(x, LIMIT)
        >>> sorted(code_fingerprint(clip).components)     # doctest: +SKIP
        ['clip', 'clip -> LIMIT', 'python']
    """
    found = _fingerprint(obj, name)
    if not state:
        return found
    walk = Walk(getattr(obj, "__module__", None))
    walk.root = root = name or walk.display(obj)
    for attr in sorted(state):
        walk._value(state[attr], root, f"self.{attr}", "global")
    components = {**found.components, **walk.components}
    kinds = {**found.kinds, **walk.kinds}
    return CodeFingerprint(_token_of(components), components, kinds)


def _token_of(components: Mapping[str, str]) -> str:
    h = xxhash.xxh3_128()
    for path, token in sorted(components.items()):
        h.update(f"{path}={token};".encode())
    return h.hexdigest()


def _fingerprint(obj: Any, name: str | None) -> CodeFingerprint:
    with _CACHE_LOCK:
        cached = _CACHE.get(id(obj))
    if cached is not None and cached[0] is obj and cached[1] == name and unchanged(cached[2]):
        return cached[3]
    walk = Walk(getattr(obj, "__module__", None))
    walk.follow(obj, None, name)
    found = CodeFingerprint(_token_of(walk.components), dict(walk.components), dict(walk.kinds))
    with _CACHE_LOCK:
        if len(_CACHE) >= _MAX_CACHED:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[id(obj)] = (obj, name, tuple(walk.reads), found)
    return found


# A fingerprint is kept per root object with every lookup it made (a global, an
# attribute, a closure cell) and the object found: it is reused while each lookup
# still finds the same object, which costs a few dict lookups instead of a walk.
_CACHE: dict[int, tuple[Any, str | None, tuple[Read, ...], CodeFingerprint]] = {}
_CACHE_LOCK = threading.Lock()
_MAX_CACHED = 4096
