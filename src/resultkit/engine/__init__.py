"""The task runner: tasks, flows, states, triggers, executors and the context."""

from .context import config, context
from .executors import LocalExecutor, ThreadExecutor
from .flow import Edge, Flow
from .signals import FAIL, PAUSE, SKIP
from .state import *  # noqa: F403
from .state import __all__ as _state_names
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
    "SKIP",
    "FAIL",
    "PAUSE",
    *_state_names,
]
