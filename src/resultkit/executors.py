"""Public home of the executors: where task runs happen."""

from typing import TYPE_CHECKING, Any

from .engine.executors import Executor, LocalExecutor, ThreadExecutor

if TYPE_CHECKING:
    from .engine.dask_executor import DaskExecutor

__all__ = ["Executor", "LocalExecutor", "ThreadExecutor", "DaskExecutor"]


def __getattr__(name: str) -> Any:
    # DaskExecutor imports dask.distributed (the [dask] extra) only when asked for.
    if name == "DaskExecutor":
        from .engine.dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'resultkit.executors' has no attribute {name!r}")
