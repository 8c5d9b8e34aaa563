"""Public home of the signals a task body can raise (SKIP, FAIL, PAUSE)."""

from .engine.signals import FAIL, PAUSE, SKIP, Signal

__all__ = ["Signal", "SKIP", "FAIL", "PAUSE"]
