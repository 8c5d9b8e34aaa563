"""Cache validators: decide whether a cached state may be reused.

A validator is called as ``validator(state, inputs, parameters)`` where
``state`` is a cached state (it has ``cached_input_tokens``, ``cached_parameters``
and ``cached_result_expiration``), ``inputs`` maps each input name to its
token (see :mod:`resultkit.caching.hashing`) and ``parameters`` maps the
flow's parameter names to their tokens. It returns ``True`` to reuse.

As in Prefect 1, ``None`` inputs or parameters never raise: a validator that
compares them returns ``False``, and every validator returns ``False`` for an
expired state.

Each built-in validator also says what it compares (:func:`match_on`), so a
cache store can look entries up by those tokens instead of scanning them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "never_use",
    "duration_only",
    "all_inputs",
    "all_parameters",
    "partial_inputs_only",
    "partial_parameters_only",
    "code_only",
    "all_inputs_and_code",
    "CacheValidator",
    "MatchOn",
    "match_on",
    "indexable",
    "uses_code",
    "CODE_INPUT",
]

CacheValidator = Callable[[Any, Mapping[str, str] | None, Mapping[str, str] | None], bool]

_MATCH_ATTR = "__resultkit_match_on__"
_CODE_ATTR = "__resultkit_uses_code__"
#: The name of the code token among a run's input tokens (not an identifier: never an input's).
CODE_INPUT = "<code>"


@dataclass(frozen=True)
class MatchOn:
    """What a validator compares besides expiry, so a store can index instead of scan.

    Attributes:
        kind: ``"never"`` (never reuses), ``"expiry"`` (any unexpired entry),
            ``"inputs"`` or ``"parameters"`` (equal tokens).
        names: the names compared; ``None`` compares the whole mapping.
    """

    kind: Literal["never", "expiry", "inputs", "parameters"]
    names: tuple[str, ...] | None = None

    def digest(
        self, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
    ) -> Hashable:
        """The index key of a lookup: equal digests exactly when the validator compares equal."""
        if self.kind not in ("inputs", "parameters"):
            return ()
        tokens = _subset(inputs if self.kind == "inputs" else parameters, self.names)
        return tuple(sorted(tokens.items()))

    def entry_digest(self, entry: Any) -> Hashable:
        """The index key of a stored entry (its cached tokens)."""
        return self.digest(
            getattr(entry, "cached_input_tokens", None), getattr(entry, "cached_parameters", None)
        )


def indexable(match: MatchOn) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
    """Declare what a validator compares (see :class:`MatchOn`); returns it unchanged.

    The declaration belongs to that exact function: a wrapper made with
    ``functools.wraps`` does not inherit it (its own logic may accept more),
    so a store scans for it instead of trusting the index.
    """

    def mark(fn: Callable[..., bool]) -> Callable[..., bool]:
        setattr(fn, _MATCH_ATTR, (match, fn))
        return fn

    return mark


def match_on(validator: Callable[..., Any]) -> MatchOn | None:
    """What ``validator`` compares, or ``None`` when unknown (a store must scan)."""
    declared = getattr(validator, _MATCH_ATTR, None)
    if isinstance(declared, tuple) and len(declared) == 2 and declared[1] is validator:
        match = declared[0]
        return match if isinstance(match, MatchOn) else None
    return None


def _subset(tokens: Mapping[str, str] | None, names: tuple[str, ...] | None) -> dict[str, str]:
    """The tokens compared: all of them, or those of ``names`` that are present."""
    tokens = tokens or {}  # None compares like "no tokens" (Prefect 1)
    if names is None:
        return dict(tokens)
    return {n: tokens[n] for n in names if n in tokens}


def _expired(state: Any) -> bool:
    expiration = getattr(state, "cached_result_expiration", None)
    return expiration is not None and expiration <= datetime.now(timezone.utc)


@indexable(MatchOn("never"))
def never_use(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Never reuse a cache."""
    return False


@indexable(MatchOn("expiry"))
def duration_only(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Reuse while the cache has not expired (``cache_for`` after it was made)."""
    return not _expired(state)


@indexable(MatchOn("inputs"))
def all_inputs(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Reuse while unexpired and every input equals the cached run's (``None`` inputs: never)."""
    if inputs is None or _expired(state):
        return False
    return _subset(getattr(state, "cached_input_tokens", None), None) == dict(inputs)


@indexable(MatchOn("parameters"))
def all_parameters(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Reuse while unexpired and the flow ran with the same parameters (``None``: never)."""
    if parameters is None or _expired(state):
        return False
    return _subset(getattr(state, "cached_parameters", None), None) == dict(parameters)


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Reuse while unexpired and the named inputs equal the cached run's.

    A name missing on one side and present on the other does not match; with
    no names, only expiry counts.

    Example:
        ``Task(cache_for=timedelta(hours=1), cache_validator=partial_inputs_only(["x"]))``
    """
    names = tuple(validate_on or ())

    @indexable(MatchOn("inputs", names))
    def partial_inputs_validator(
        state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
    ) -> bool:
        if _expired(state):
            return False
        return _subset(getattr(state, "cached_input_tokens", None), names) == _subset(inputs, names)

    return partial_inputs_validator


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Reuse while unexpired and the named parameters equal the cached run's."""
    names = tuple(validate_on or ())

    @indexable(MatchOn("parameters", names))
    def partial_parameters_validator(
        state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
    ) -> bool:
        if _expired(state):
            return False
        return _subset(getattr(state, "cached_parameters", None), names) == _subset(
            parameters, names
        )

    return partial_parameters_validator


def uses_code(validator: Callable[..., Any]) -> bool:
    """Whether ``validator`` compares the task's code (the runner then puts its
    fingerprint, or its ``code_version``, among the input tokens as ``CODE_INPUT``)."""
    return getattr(validator, _CODE_ATTR, None) is validator


def _compares_code(fn: Callable[..., bool]) -> Callable[..., bool]:
    setattr(fn, _CODE_ATTR, fn)
    return fn


@_compares_code
@indexable(MatchOn("inputs", (CODE_INPUT,)))
def code_only(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Reuse while unexpired and the task's code is unchanged (its fingerprint, see
    :mod:`resultkit.caching.fingerprint`, or its ``code_version``); inputs are not compared.

    Example:
        ``@task(cache_for=timedelta(days=7), cache_validator=code_only)``
    """
    if inputs is None or CODE_INPUT not in inputs or _expired(state):
        return False
    return (
        _subset(getattr(state, "cached_input_tokens", None), None).get(CODE_INPUT)
        == inputs[CODE_INPUT]
    )


@_compares_code
@indexable(MatchOn("inputs"))
def all_inputs_and_code(
    state: Any, inputs: Mapping[str, str] | None, parameters: Mapping[str, str] | None
) -> bool:
    """Reuse while unexpired, every input equals the cached run's and the code is unchanged.

    Example:
        ``@task(cache_for=timedelta(days=7), cache_validator=all_inputs_and_code)``
    """
    if inputs is None or CODE_INPUT not in inputs:
        return False
    return all_inputs(state, inputs, parameters)
