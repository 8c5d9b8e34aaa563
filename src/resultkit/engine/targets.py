"""Targets (Make-style caching): format once, check, read; mapped children in bulk.

A target is formatted exactly once into a
:class:`~resultkit.results.FormattedLocation`, and that object is what is
passed back to ``read``, ``write`` and ``exists_many``: a value with braces
substituted into it (``"a{x}b"``) is never formatted again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..caching.explain import CacheMiss
from ..caching.store import expired_reason
from ..errors import (
    ResultCorruptError,
    ResultError,
    ResultNotFoundError,
    SerializationError,
    SerializerMismatchError,
    warn_user,
)
from ..results import FormattedLocation, Result, StorageResult
from .context import context
from .output_cache import OutputCaching
from .persist import formatted_for
from .state import Cached, Failed, State
from .task import Task
from .transitions import UserCodeError, call_user
from .unit import RunUnit

__all__ = ["format_target", "read_target", "check_mapped_targets", "TargetCollision"]

logger = logging.getLogger("resultkit")


class TargetCollision(Exception):
    """Two mapped children format their target to the same location (the map fails)."""


_HOOKS: dict[tuple[type, str], str] = {}


def _hook(result: Result, method: str) -> str:
    """How messages name ``result``'s ``method`` (made once per class: every read asks)."""
    key = (type(result), method)
    name = _HOOKS.get(key)
    if name is None:
        name = _HOOKS[key] = f"Result hook {type(result).__name__}.{method}"
    return name


def format_target(task: Task, result: Result, keys: Mapping[str, Any]) -> FormattedLocation:
    """The task's target formatted with ``keys``, once.

    Raises :class:`~resultkit.errors.ResultError` for a bad template or an
    unsafe location, :class:`UserCodeError` when the Result's own code raised.
    """
    formatted = formatted_for(task, result, keys, task.target)
    location = formatted.location
    # A subclass may hand back a plain str: it was formatted here, so it is final.
    return location if isinstance(location, FormattedLocation) else FormattedLocation(location)


def _missed(
    misses: list[CacheMiss] | None,
    target: FormattedLocation,
    name: str,
    reason: str,
    changed: tuple[str, ...] = (),
) -> None:
    """Log a target miss in one line and keep it for ``state.cache_miss``.

    Without ``misses`` (a second look, under a single-flight lock) nothing is
    logged: the first look already said why.
    """
    if misses is not None:
        logger.info("Task '%s': target miss (%s): %s", name, target, reason)
        misses.append(CacheMiss("target", str(target), reason, changed))


#: The reason of a miss whose target was there but unusable (it was warned about).
UNUSABLE = "the target could not be used"


def read_target(
    task: Task,
    result: Result,
    target: FormattedLocation,
    exists_hint: bool | None,
    name: str,
    caching: OutputCaching | None = None,
    misses: list[CacheMiss] | None = None,
    warn: bool = True,
) -> State | None:
    """The Cached state from the target, or None for a miss (its reason in ``misses``).

    Missing is a miss; an unreadable target (corrupt, written by another
    serializer, undeserializable) is a miss with a warning, and is then
    recomputed and overwritten. Storage failures (access denied, network)
    are not misses: they raise and fail the task. With ``caching``, a
    refresh is a miss, and so is a target whose code record
    ``task.target_validator`` refuses.
    """
    if caching is not None and caching.refreshing(task):
        _missed(misses, target, name, "refresh requested")
        return None
    if exists_hint is False:
        _missed(misses, target, name, "no target")
        return None
    if exists_hint is None and not isinstance(result, StorageResult):
        # A Prefect-1-style Result (its own read/write/exists) may not raise
        # ResultNotFoundError for a missing target: ask exists() first, as Prefect 1 did.
        exists = call_user(
            _hook(result, "exists"), result.exists, target, passthrough=(ResultError,)
        )
        if not exists:
            _missed(misses, target, name, "no target")
            return None
    try:
        # On a StorageResult, a missing target costs what exists() would and a hit is
        # one round trip. Called as call_user() would (inline: every target read).
        stored = result.read(target)
    except ResultNotFoundError:
        _missed(misses, target, name, "no target")
        return None
    except (ResultCorruptError, SerializerMismatchError, SerializationError) as exc:
        if warn:
            warn_user(
                f"task {name!r}: the target {target} could not be used ({exc}); "
                "running the task and writing it again"
            )
        _missed(misses, target, name, f"{UNUSABLE} ({type(exc).__name__})")
        return None
    except (ResultError, UserCodeError):
        raise  # a storage failure fails the task; user code already named
    except Exception as exc:
        raise UserCodeError(_hook(result, "read"), exc) from exc
    record = getattr(stored, "record", None)  # a Prefect-1-style Result may have none
    if task.cache_for is not None and record is not None:
        expires = record.written_at + task.cache_for
        if expires <= datetime.now(timezone.utc):
            _missed(misses, target, name, expired_reason(expires))
            return None
    if task.target_validator is not None and caching is not None:
        stale = caching.check_target(task, str(target))
        if stale is not None:
            _missed(misses, target, name, stale[0], stale[1])
            return None
    return Cached(f"target {target} exists", stored)


def check_mapped_targets(
    task: Task, result: Result, units: list[RunUnit], flow_keys: Mapping[str, Any]
) -> None:
    """Format each child's target, refuse collisions, and check existence in bulk.

    A child whose target cannot be formatted gets ``target_failure`` (it
    fails, the others run). Raises :class:`TargetCollision` when two
    children share a target. A failing bulk check is not an error: each
    child then checks its own target.
    """
    seen: dict[str, int | None] = {}
    formatted: list[RunUnit] = []
    for unit in units:
        try:
            with context(flow_keys, unit.keys):
                location = format_target(task, result, unit.keys)
        except ResultError as exc:
            unit.target_failure = Failed(f"target: {exc}", exception=exc)
            continue
        except UserCodeError as err:
            unit.target_failure = err.failed()
            continue
        if location in seen:
            raise TargetCollision(
                f"mapped task {task.name!r}: children {seen[location]} and {unit.map_index} "
                f"both have the target {location}; include {{map_index}} (or an input) in the "
                "target so each child has its own"
            )
        seen[location] = unit.map_index
        unit.target_location = location
        formatted.append(unit)
    if not formatted:
        return
    try:
        found = result.exists_many([u.target_location for u in formatted])  # type: ignore[misc]
        if len(found) != len(formatted):
            raise ValueError(f"exists_many returned {len(found)} answers for {len(formatted)}")
    except Exception:
        # Only a shortcut: each child reads its own target, and fails on a real error.
        logger.debug("Task '%s': bulk target check failed", task.name, exc_info=True)
        return
    for unit, exists in zip(formatted, found, strict=True):
        unit.target_exists = bool(exists)
