"""How fast a pod speaks: audio-seconds made per second of engine time, smoothed.

The router divides a pod's queued audio-seconds by this to predict when the
pod would finish a new request, so it must be the pod's throughput now: a
pod on a busy node, throttled, or on a slower GPU reports less. Time counts
while any engine step runs (the two lanes overlap, so their step times are
not added up), which includes time the process was stopped or starved of CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Each sample covers at least this much engine time, so one short step cannot swing it.
MIN_SAMPLE_SECONDS = 0.2
# Weight of the newest sample: about the last five samples count.
SMOOTHING = 0.3


class Speedometer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running = 0
        self._since = 0.0
        self._busy = 0.0
        self._audio = 0.0
        self.audio_seconds_per_second = 0.0  # 0 until measured

    def _account(self) -> None:
        now = self._clock()
        if self._running:
            self._busy += now - self._since
        self._since = now

    def step_started(self) -> None:
        self._account()
        self._running += 1

    def step_ended(self, audio_seconds: float) -> None:
        self._account()
        self._running -= 1
        self._audio += audio_seconds
        if self._busy < MIN_SAMPLE_SECONDS:
            return
        sample = self._audio / self._busy
        current = self.audio_seconds_per_second
        self.audio_seconds_per_second = (
            sample if current == 0 else SMOOTHING * sample + (1 - SMOOTHING) * current
        )
        self._busy = self._audio = 0.0
