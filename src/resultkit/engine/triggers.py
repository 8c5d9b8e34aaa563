"""Triggers: decide from the upstream states whether a task runs.

A trigger takes the list of upstream states and returns ``True`` to run;
``False`` puts the task in ``TriggerFailed``. ``manual_only`` pauses instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..signals import PAUSE
from .state import State

__all__ = [
    "all_successful",
    "all_failed",
    "any_successful",
    "any_failed",
    "all_finished",
    "always_run",
    "manual_only",
    "Trigger",
]

Trigger = Callable[[Sequence[State]], bool]


def all_successful(upstream: Sequence[State]) -> bool:
    """Run if every upstream task succeeded (the default)."""
    for s in upstream:  # noqa: SIM110 (a loop costs less than all(): the default trigger)
        if not s.is_successful():
            return False
    return True


def all_failed(upstream: Sequence[State]) -> bool:
    """Run if every upstream task failed."""
    return all(s.is_failed() for s in upstream)


def any_successful(upstream: Sequence[State]) -> bool:
    """Run if at least one upstream task succeeded (or there are none)."""
    return not upstream or any(s.is_successful() for s in upstream)


def any_failed(upstream: Sequence[State]) -> bool:
    """Run if at least one upstream task failed (or there are none)."""
    return not upstream or any(s.is_failed() for s in upstream)


def all_finished(upstream: Sequence[State]) -> bool:
    """Run once every upstream task finished, whatever the outcome."""
    return all(s.is_finished() for s in upstream)


always_run = all_finished


def manual_only(upstream: Sequence[State]) -> bool:
    """Never run by itself: the task pauses until resumed with ``Resume()``."""
    raise PAUSE("waiting for approval (manual_only trigger); resume with Resume()")
