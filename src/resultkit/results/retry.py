"""Retrying transient storage failures: a bounded, jittered exponential backoff.

A failure is transient when the service said so (HTTP 408, 429, 500, 502,
503, 504) or the connection failed (refused, reset, timed out). Access
denied (401, 403), not found (404), a missing bucket and damaged data are
never retried: trying again cannot fix them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a Result retries a transient storage failure.

    Args:
        attempts: tries in all, the first included (1: never retry).
        initial_delay: seconds before the first retry.
        max_delay: the longest wait between two tries.
        multiplier: how much the wait grows after each try.

    Example:
        >>> from resultkit.results import MemoryResult, RetryPolicy
        >>> r = MemoryResult(retries=RetryPolicy(attempts=6, max_delay=5.0))
    """

    attempts: int = 4
    initial_delay: float = 0.1
    max_delay: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy(attempts={self.attempts!r}): attempts counts every try and must "
                "be an int >= 1 (1 means no retry)"
            )
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError(
                "RetryPolicy needs initial_delay >= 0, max_delay >= 0 and multiplier >= 1"
            )

    def delays(self) -> Iterator[float]:
        """The waits before each retry ("full jitter": random up to the backoff)."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield random.uniform(0, min(delay, self.max_delay))
            delay *= self.multiplier

    @classmethod
    def coerce(cls, retries: RetryPolicy | int | None) -> RetryPolicy:
        """``retries=`` as given to a Result: a policy, a number of attempts, or the default."""
        if retries is None:
            return cls()
        if isinstance(retries, RetryPolicy):
            return retries
        if isinstance(retries, int) and not isinstance(retries, bool):
            return cls(attempts=retries)
        raise ConfigurationError(
            f"retries must be a RetryPolicy or a number of attempts, got {retries!r}"
        )
