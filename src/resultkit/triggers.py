"""Public home of the triggers."""

from .engine.triggers import (
    all_failed,
    all_finished,
    all_successful,
    always_run,
    any_failed,
    any_successful,
    manual_only,
)

__all__ = [
    "all_successful",
    "all_failed",
    "any_successful",
    "any_failed",
    "all_finished",
    "always_run",
    "manual_only",
]
