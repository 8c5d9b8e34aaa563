"""resultkit: persist and reuse task results on any storage.

Standalone results::

    from resultkit.results import LocalResult
    r = LocalResult(dir="~/.resultkit/results", location="{task_name}.pkl")
    r.write(42, task_name="answer").read().value    # -> 42

A flow::

    from resultkit import Flow, task
    @task(target="{date:%A}/{task_name}.txt", checkpoint=True)
    def extract(): ...
"""

from __future__ import annotations

from . import cache_validators, errors
from .engine.context import config, context
from .engine.flow import Flow
from .engine.state import Resume
from .engine.task import Parameter, Task, task, unmapped

__version__ = "0.1.0"

__all__ = [
    "Task",
    "task",
    "Flow",
    "Parameter",
    "unmapped",
    "context",
    "config",
    "Resume",
    "cache_validators",
    "errors",
    "__version__",
]
