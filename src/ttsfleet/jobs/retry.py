"""How often and after how long a failed piece or job is tried again.

Whether a failure is worth another try at all is `ttsfleet.errors.PERMANENT`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Two levels: a piece is retried within a job's attempt, a job is attempted again later."""

    piece_attempts: int = 3
    # Attempts of a job (a worker lost mid-job counts as one) before it is dead-lettered.
    job_attempts: int = 3
    backoff_seconds: float = 0.5
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 60.0
    # While the fleet is away (UNAVAILABLE, RESOURCE_EXHAUSTED) workers stop claiming and
    # wait, doubling from `away_seconds` up to `max_away_seconds`; no attempt is spent.
    away_seconds: float = 1.0
    max_away_seconds: float = 120.0

    def delay(self, failures: int) -> float:
        """Exponential backoff with jitter (half fixed, half random) after `failures` failures."""
        return _jittered(
            self.backoff_seconds, self.backoff_factor, self.max_backoff_seconds, failures
        )

    def away_delay(self, reports: int) -> float:
        """How long to stop claiming after the fleet was reported away `reports` times in a row."""
        return _jittered(self.away_seconds, self.backoff_factor, self.max_away_seconds, reports)


def _jittered(first: float, factor: float, most: float, failures: int) -> float:
    ceiling = min(first * factor ** max(failures - 1, 0), most)
    return ceiling / 2 + random.uniform(0, ceiling / 2)
