"""Signals a task body can raise to choose its state."""

from __future__ import annotations

from ..errors import ResultKitError

__all__ = ["Signal", "SKIP", "FAIL", "PAUSE"]


class Signal(ResultKitError):
    """Base of the signals; the message becomes the state's message."""


class SKIP(Signal):
    """Skip this task (and, by default, its downstream tasks)."""


class FAIL(Signal):
    """Fail this task without retrying."""


class PAUSE(Signal):
    """Pause this task until it is resumed."""
