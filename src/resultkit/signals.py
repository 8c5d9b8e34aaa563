"""Signals a task body (or a trigger) raises to choose its state: SKIP, FAIL, PAUSE.

They are control flow, not errors: they do not subclass
:class:`~resultkit.errors.ResultKitError`, so ``except ResultKitError`` in a
task body never swallows them.

Example:
    >>> from resultkit.signals import SKIP
    >>> def run():
    ...     raise SKIP("nothing new today")   # the task is Skipped with this message
"""

from __future__ import annotations

__all__ = ["Signal", "SKIP", "FAIL", "PAUSE"]


class Signal(Exception):
    """Base of the signals; the message becomes the state's message."""


class SKIP(Signal):
    """Skip this task (and, by default, its downstream tasks)."""


class FAIL(Signal):
    """Fail this task without retrying."""


class PAUSE(Signal):
    """Pause this task until it is resumed with ``Resume()``."""
