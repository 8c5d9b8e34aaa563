"""Checks before a flow run starts: shared targets, run ids."""

from __future__ import annotations

import functools
import os
import re
import socket
import string
from typing import Any

from ..errors import FlowError
from ..results import StorageResult
from ._plan import FlowPlan, plan_of
from .flow import Flow
from .task import Task
from .task_runner import TaskRunner
from .unit import RunUnit

__all__ = ["refuse_shared_targets", "check_run_id", "refuse_recorded"]

_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def refuse_shared_targets(flow: Flow, runner: TaskRunner, plan: FlowPlan | None = None) -> None:
    """Fail before any task runs when two tasks' targets format to one location.

    Only targets that can be formatted without inputs are known now; the
    others are checked as their tasks run (the second task then fails).
    ``plan`` is the flow's (``engine._plan``); every run checks again, with
    its own keys, and a target formatted alike in an earlier run is reused.
    """
    plan = plan if plan is not None else plan_of(flow)
    seen: dict[str, Task] = {}
    mapped, inputs_of = plan.mapped, plan.inputs
    for task in plan.order:
        template = task.target
        if template is None or task in mapped:
            continue  # mapped children: checked among themselves when they are made
        inputs = inputs_of[task]
        if inputs and inputs & _fields(template):
            continue  # needs an input: checked when the task runs
        result = runner.result_for(task)
        if result is None:
            continue
        keys: dict[str, Any] = {}
        try:
            # A template without fields, formatted in an earlier run, needs no keys (the
            # run makes its own); any other is formatted with the run's keys.
            found = runner.targets.get_by_inputs(task, result, keys)
            if isinstance(found, str):
                target = found
            else:
                keys = runner.keys_for(RunUnit(task, [], {}))
                target = runner.target_of(task, result, keys)
        except Exception:  # broken: the run reports it
            continue
        if not inputs:  # the run's own keys and target: not formatted again
            runner.preformatted[task] = (keys, target)
        elif isinstance(template, str) and "task_run_id" not in _fields(template):
            # It uses no input (nor this run's id): the run formats the same target.
            runner.preformatted[task] = ({}, target)
        other = seen.setdefault(str(target), task)
        if other is not task:
            raise FlowError(
                f"flow {flow.name!r}: tasks {other.name!r} and {task.name!r} both have the "
                f"target {target}; each would serve the other's value. Give each its own "
                "target (e.g. include {task_name})."
            )
        runner.claim_target(task, target)


def _fields(template: Any) -> frozenset[str]:
    """The top-level names a string template uses (a callable: none known)."""
    if not isinstance(template, str):
        return frozenset()
    return _string_fields(template)


@functools.lru_cache(maxsize=1024)
def _string_fields(template: str) -> frozenset[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return frozenset()
    return frozenset(name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name)


def refuse_recorded(store: StorageResult, run_id: str) -> None:
    """Claim ``run_id`` in ``store``: a new run never mixes its records with another's.

    The claim is an atomic create where the storage has one, so of two
    processes starting a run with one id at once, exactly one runs.
    """
    taken = FlowError(
        f"run {run_id!r} is already recorded in {store.root_url}; continue it with "
        f"flow.resume({run_id!r}), or give this run another run_id"
    )
    try:
        if store.exists(f"{run_id}/run.json"):
            raise taken
        if store.storage.supports_put_if_absent:
            owner = f"{socket.gethostname()}:{os.getpid()}".encode()
            # Under the reserved locks folder: never listed as a value, nor verified.
            claim = store.lock_prefix(f"{run_id}/run.json") + "claim"
            if not store.storage.put_if_absent(claim, owner, {}):
                raise taken
    except FlowError:
        raise
    except Exception:
        return  # the records' store is unreachable: the run warns when it records


def check_run_id(run_id: str) -> None:
    """Refuse a run id that could not name a folder of every run store."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise FlowError(
            f"run_id {run_id!r} is not usable: it names a folder of the run store, so use 1 to "
            "128 letters, digits, '.', '_' or '-', not starting with '.', "
            "e.g. run_id='nightly-2026-11-25'"
        )
