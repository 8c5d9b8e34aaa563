"""Public home of the executors (a ``DaskExecutor`` comes with the [scale] work)."""

from .engine.executors import Executor, LocalExecutor, ThreadExecutor

__all__ = ["Executor", "LocalExecutor", "ThreadExecutor"]
