"""How slow a pod is now: a peak-EWMA of its time to first audio.

Load reports say how much work a pod holds and how fast it has been going;
they cannot say that the pod stalled a moment ago (stopped, throttled,
swapping, a noisy neighbour), nor do they arrive while it is stalled. The
router's own view does: every stream it forwards shows how long the pod took
to start speaking. A slow answer raises the estimate at once (the peak);
faster ones lower it gradually, and with no answers at all it decays
towards zero, so a pod that was avoided gets traffic again and can show it
has recovered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Seconds for a past slow answer to weigh about a third as much (1/e).
DECAY_SECONDS = 5.0


class PeakEwma:
    def __init__(
        self, decay_seconds: float = DECAY_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._decay = decay_seconds
        self._clock = clock
        self._value = 0.0
        self._at = clock()

    def _weight(self, now: float) -> float:
        return math.exp(-(now - self._at) / self._decay)

    @property
    def seconds(self) -> float:
        """The estimate now: the last value, decayed for the time since it was set."""
        return self._value * self._weight(self._clock())

    def observe(self, seconds: float) -> None:
        now = self._clock()
        weight = self._weight(now)
        current = self._value * weight
        self._value = seconds if seconds > current else current * weight + seconds * (1 - weight)
        self._at = now
