"""The task runner: tasks, flows, states, triggers, executors and the context."""

from .context import config, context
from .executors import LocalExecutor, ThreadExecutor
from .flow import Edge, Flow
from .signals import FAIL, PAUSE, SKIP
from .state import (
    Cached,
    Failed,
    Finished,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from .task import FunctionTask, Parameter, Task, task, unmapped

__all__ = [
    "Task",
    "FunctionTask",
    "task",
    "Parameter",
    "unmapped",
    "Flow",
    "Edge",
    "context",
    "config",
    "LocalExecutor",
    "ThreadExecutor",
    "State",
    "Pending",
    "Running",
    "Finished",
    "Success",
    "Cached",
    "Mapped",
    "Skipped",
    "Failed",
    "TriggerFailed",
    "Retrying",
    "Paused",
    "Resume",
    "SKIP",
    "FAIL",
    "PAUSE",
]
