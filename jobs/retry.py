"""When a failure is worth another try, and how long to wait before it."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

Code = grpc.StatusCode
# The request itself is wrong (or not allowed): every retry would fail the same way.
PERMANENT = frozenset(
    {
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.FAILED_PRECONDITION,
        Code.OUT_OF_RANGE,
        Code.UNIMPLEMENTED,
        Code.UNAUTHENTICATED,
        Code.PERMISSION_DENIED,
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """Two levels: a piece is retried within a job's attempt, a job is attempted again later."""

    piece_attempts: int = 3
    # Attempts of a job (a worker lost mid-job counts as one) before it is dead-lettered.
    job_attempts: int = 3
    backoff_seconds: float = 0.5
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 60.0

    def delay(self, failures: int) -> float:
        """Exponential backoff with jitter (half fixed, half random) after `failures` failures."""
        ceiling = min(
            self.backoff_seconds * self.backoff_factor ** max(failures - 1, 0),
            self.max_backoff_seconds,
        )
        return ceiling / 2 + random.uniform(0, ceiling / 2)
