"""Internal: the task runner's implementation (tasks, flows, states, scheduling).

Nothing here is public API and names may move between these modules. Import
from the public homes instead: ``resultkit`` (Task, task, Flow, Parameter,
unmapped, context, config, Resume), ``resultkit.states``,
``resultkit.triggers``, ``resultkit.executors``, ``resultkit.signals`` and
``resultkit.cache_validators``.
"""

__all__: list[str] = []
