"""What one task run needs: its inputs, upstream states and template keys."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from ..results import FormattedLocation
from .context import current_keys
from .flow import Edge
from .state import Failed, Retrying, State
from .task import Task

__all__ = ["RunUnit", "template_keys", "unit_keys", "new_task_run_id"]

# Task run ids: 96 random bits per process, then a counter. As unique as uuid4's
# hex (32 hex digits) at a fraction of its cost (one os.urandom call per run was
# ~8 % of a warm target hit); a forked child draws its own random part.
_id_random = os.urandom(12).hex()
_id_counter = itertools.count()


def _new_id_random() -> None:
    global _id_random, _id_counter
    _id_random, _id_counter = os.urandom(12).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_id_random)


def new_task_run_id() -> str:
    """A fresh task run id: 32 hex digits, unique across runs and processes.

    Example:
        >>> a, b = new_task_run_id(), new_task_run_id()
        >>> len(a), a != b
        (32, True)
    """
    return f"{_id_random}{next(_id_counter) & 0xFFFFFFFF:08x}"


@dataclass
class RunUnit:
    """One task run to do: a task, or one child of a mapped task."""

    task: Task
    upstream: list[tuple[Edge, State]]
    inputs: dict[str, Any]
    map_index: int | None = None
    prior: State | None = None
    keys: dict[str, Any] = field(default_factory=dict)
    #: Set for mapped children, whose targets are formatted and checked in bulk first.
    target_location: FormattedLocation | None = None
    target_exists: bool | None = None
    #: Why this child's target could not be formatted; the child fails with it.
    target_failure: Failed | None = None
    #: On a remote executor: the upstream states deferred inputs are resolved from.
    refs: dict[str, Any] = field(default_factory=dict)
    #: A mapped child whose write may wait in the run's batch (``engine.write_batch``).
    batched: bool = False
    #: Its write, once queued (a ``QueuedWrite``): the child finishes when it is written.
    queued: Any = None

    @property
    def full_name(self) -> str:
        """``name`` for a task, ``name[i]`` for a mapped child."""
        name = self.task.name
        return name if self.map_index is None else f"{name}[{self.map_index}]"


#: The day keys of the last day asked for: (its date, the keys); six strftime a run otherwise.
_DAY_KEYS: tuple[date, dict[str, str]] | None = None


def template_keys(when: datetime) -> dict[str, Any]:
    """The date keys for a run started at ``when``: ``date``, ``today``... and ``_nodash`` forms.

    Example:
        >>> keys = template_keys(datetime(2026, 11, 26, 23, 59))
        >>> keys["today"], keys["yesterday_nodash"], keys["tomorrow"]
        ('2026-11-26', '20261125', '2026-11-27')
    """
    global _DAY_KEYS
    known = _DAY_KEYS
    today = when.date()
    if known is None or known[0] != today:
        days: dict[str, str] = {}
        for name, delta in (("today", 0), ("yesterday", -1), ("tomorrow", 1)):
            day = today + timedelta(days=delta)
            days[name] = day.strftime("%Y-%m-%d")
            days[f"{name}_nodash"] = day.strftime("%Y%m%d")
        known = _DAY_KEYS = (today, days)
    return {"date": when, **known[1]}


def first_run_count(prior: State | None) -> int:
    """The 1-based ``task_run_count`` of the next attempt (a retry continues the count)."""
    return (prior.run_count if isinstance(prior, Retrying) else 0) + 1


def unit_keys(
    flow_keys: Mapping[str, Any], unit: RunUnit, outer: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The template keys and context of a task run (``outer``: the context it runs in,
    by default the current one).

    Inputs win over context keys, which win over parameters (README,
    "Template keys"). ``task_run_count`` and ``task_loop_count`` are
    Prefect 1's context keys (1-based).
    """
    task = unit.task
    # One dict display: later entries win, as in the order documented above.
    keys: dict[str, Any] = {
        **flow_keys.get("parameters", {}),
        **(current_keys() if outer is None else outer),
        "task_name": task.name,
        "task_full_name": unit.full_name,
        "task_slug": task.slug,
        "task_run_id": new_task_run_id(),
        "map_index": unit.map_index,
        "task_tags": sorted(task.tags),
        "task_run_count": first_run_count(unit.prior),
        "task_loop_count": 1,  # no LOOP signal here: each run is its own first loop
        **unit.inputs,
    }
    keys.pop("caches", None)  # the cache store is not a template key
    return keys
