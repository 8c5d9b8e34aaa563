"""Public home of the states."""

from .engine.state import (
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

__all__ = [
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
]
