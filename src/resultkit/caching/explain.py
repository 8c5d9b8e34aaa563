"""Why a cache missed, as one line and as data; and the last two keys of a cache side by side.

:class:`CacheMiss` is what ``state.cache_miss`` holds after a task ran
because its output cache or its target could not serve it; its ``reason``
is the line logged at INFO (``input `x` changed``, ``code of `clean ->
helpers.normalise` changed``, ``expired at 2026-11-25 17:00:00+00:00``).
:func:`compare_last_entries` is the data side of ``resultkit why``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .store import CacheKey, expired_reason, is_expired
from .validators import CODE_INPUT, MatchOn

__all__ = [
    "CacheMiss",
    "explain_miss",
    "KeyComponent",
    "KeyComparison",
    "compare_last_entries",
    "code_reason",
]


@dataclass(frozen=True)
class CacheMiss:
    """Why a task's cache (``kind="cache"``) or target (``kind="target"``) did not serve it.

    Attributes:
        kind: ``"cache"`` or ``"target"``.
        where: the cache's label (``'clean'``, ``'clean[2]'``) or the target's location.
        reason: one line: ``no entry``, ``expired at ...``, ``input `x` changed``...
        changed: what differs from the newest entry, as ``"input x"``,
            ``"parameter day"``, ``"code clean -> helpers.normalise"``; empty
            when the miss has another cause (no entry, expiry, refresh...).

    Example:
        >>> state.result[ref].cache_miss.reason     # doctest: +SKIP
        'code of `clean -> helpers.normalise` changed'
    """

    kind: Literal["cache", "target"]
    where: str
    reason: str
    changed: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.kind} miss ({self.where}): {self.reason}"


def code_reason(paths: list[str], kinds: Mapping[str, str] | None = None) -> str:
    """``code of `a -> b` changed`` for the changed component paths (the first three)."""
    shown = ", ".join(f"`{p}`" for p in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"code of {shown}{more} changed"


def _differs(now: Mapping[str, str], before: Mapping[str, str]) -> list[str]:
    names = list(now) + [n for n in before if n not in now]
    return [n for n in names if now.get(n) != before.get(n)]


def explain_miss(
    entries: Sequence[Any] | Any | None,
    inputs: Mapping[str, str],
    parameters: Mapping[str, str],
    code: Mapping[str, str] | None = None,
    now: datetime | None = None,
    match: MatchOn | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The reason (one line) and the changed components of a miss, judged against the
    key's newest ``entries`` (newest first; ``None`` or empty: there is none).

    The entry closest to this run (fewest differences; the newest of equals)
    explains it. ``match`` is what the validator compares (see
    :func:`~resultkit.caching.validators.match_on`): only that is reported;
    ``None`` reports every difference. ``code`` is the task's current code
    components; an entry's are its ``cached_code``.

    Example:
        >>> explain_miss(None, {}, {})
        ('no entry', ())
    """
    if entries is None:
        entries = []
    elif not isinstance(entries, Sequence):
        entries = [entries]
    if not entries:
        return "no entry", ()
    now = now or datetime.now(timezone.utc)
    judged = [_judge(e, inputs, parameters, code, match) for e in entries]
    best = min(range(len(judged)), key=lambda n: (len(judged[n][1]), n))
    parts, changed = judged[best]
    if not parts:
        if is_expired(entries[best], now):
            return expired_reason(entries[best].cached_result_expiration), ()
        return "the validator refused the newest entry", ()
    return "; ".join(parts), tuple(changed)


def _judge(
    entry: Any,
    inputs: Mapping[str, str],
    parameters: Mapping[str, str],
    code: Mapping[str, str] | None,
    match: MatchOn | None,
) -> tuple[list[str], list[str]]:
    """(reason parts, changed components) of this run against one entry."""
    kind = match.kind if match is not None else None
    names = match.names if match is not None else None
    cached_inputs = _compared(getattr(entry, "cached_input_tokens", None), kind, "inputs", names)
    current = _compared(inputs, kind, "inputs", names)
    code_changed = (CODE_INPUT in current or CODE_INPUT in cached_inputs) and current.get(
        CODE_INPUT
    ) != cached_inputs.get(CODE_INPUT)
    current.pop(CODE_INPUT, None)
    cached_inputs.pop(CODE_INPUT, None)
    inputs_changed = _differs(current, cached_inputs)
    params_changed = _differs(
        _compared(parameters, kind, "parameters", names),
        _compared(getattr(entry, "cached_parameters", None), kind, "parameters", names),
    )
    changed = [f"input {n}" for n in inputs_changed] + [f"parameter {n}" for n in params_changed]
    parts = []
    if inputs_changed:
        parts.append(_named("input", inputs_changed))
    if params_changed:
        parts.append(_named("parameter", params_changed))
    if code_changed:
        before = dict(getattr(entry, "cached_code", {}) or {})
        paths = _differs(dict(code or {}), before) if before else []
        changed += [f"code {p}" for p in paths] or ["code"]
        parts.append(code_reason(paths) if paths else "code changed")
    return parts, changed


def _compared(
    tokens: Mapping[str, str] | None, kind: str | None, what: str, names: Sequence[str] | None
) -> dict[str, str]:
    """The tokens a validator of ``kind`` compares among ``what`` (all when it is unknown)."""
    if kind not in (None, what):
        return {}
    found = dict(tokens or {})
    return found if names is None or kind is None else {n: found[n] for n in names if n in found}


def _named(what: str, names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    plural = "s" if len(names) > 1 else ""
    return f"{what}{plural} {shown}{more} changed"


# -- resultkit why -------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyComponent:
    """One component of a cache key in the two newest entries (``None``: absent there)."""

    name: str
    older: str | None
    newer: str | None

    @property
    def changed(self) -> bool:
        """Whether the two entries differ in it."""
        return self.older != self.newer


@dataclass(frozen=True)
class KeyComparison:
    """The two newest entries of a cache key, component by component.

    ``older`` and ``newer`` are the entries' creation times (``None`` when
    the key has fewer entries); ``components`` lists ``input x``,
    ``parameter day``, ``code <path>`` and ``expires``, changed ones first.
    """

    key: CacheKey
    older: datetime | None
    newer: datetime | None
    components: tuple[KeyComponent, ...]

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Printable rows: (component, older, newer, ``"changed"`` or ``""``)."""
        return [
            (c.name, c.older or "-", c.newer or "-", "changed" if c.changed else "")
            for c in self.components
        ]


def _components(entry: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, token in sorted(dict(getattr(entry, "cached_input_tokens", {}) or {}).items()):
        if name != CODE_INPUT:
            found[f"input {name}"] = token
    for name, token in sorted(dict(getattr(entry, "cached_parameters", {}) or {}).items()):
        found[f"parameter {name}"] = token
    code = dict(getattr(entry, "cached_code", {}) or {})
    tokens = dict(getattr(entry, "cached_input_tokens", {}) or {})
    if CODE_INPUT in tokens and not code:
        found["code"] = tokens[CODE_INPUT]
    for path, token in sorted(code.items()):
        found[f"code {path}"] = token
    expires = getattr(entry, "cached_result_expiration", None)
    found["expires"] = "never" if expires is None else expires.isoformat()
    return found


def compare_last_entries(store: Any, key: CacheKey) -> KeyComparison:
    """The components of the two newest entries under ``key`` in ``store``, side by side.

    ``store`` is a :class:`~resultkit.caching.ResultCacheStore` or an
    :class:`~resultkit.caching.OutputCache` (anything with ``recent(key, n)``).
    Tokens are shown as stored (hashes): what matters is which differ.

    Example:
        >>> cmp = compare_last_entries(store, CacheKey("clean", "etl"))   # doctest: +SKIP
        >>> [r for r in cmp.rows() if r[3]]                                # doctest: +SKIP
        [('code clean -> helpers.normalise', '3f1c...', '9a2e...', 'changed'), ...]
    """
    recent = list(store.recent(key, 2))  # newest first
    newer = recent[0] if recent else None
    older = recent[1] if len(recent) > 1 else None
    new_parts = _components(newer) if newer is not None else {}
    old_parts = _components(older) if older is not None else {}
    names = list(new_parts) + [n for n in old_parts if n not in new_parts]
    rows = [KeyComponent(n, old_parts.get(n), new_parts.get(n)) for n in names]
    rows.sort(key=lambda c: not c.changed)  # changed first, else in key order
    return KeyComparison(key, _created(older), _created(newer), tuple(rows))


def _created(entry: Any) -> datetime | None:
    """When an entry was made: a stored entry's ``created``, a Cached state's ``timestamp``."""
    if entry is None:
        return None
    when = getattr(entry, "created", None) or getattr(entry, "timestamp", None)
    return when if isinstance(when, datetime) else None
