"""Which pod gets a request: pure decisions over `Candidate` snapshots.

Every pick first narrows the candidates to those whose turn it is: pods with
a fresh load report (younger than `stale_after`) and room in their queue. A
stale report means "capacity unknown", not "idle", so pods without one are
used only when no pod has a fresh report at all (just after start-up, or pods
that do not report). Draining pods never get a turn; ejected ones only when
every other pod is ejected too (their ejection may be out of date, and a
refusal would be certain). A batch request treats a pod as full at a lower
share of its queue (`room_share`), so batch work is shed first. Among those
whose turn it is, a picker chooses.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from ttsfleet.router.endpoints import Candidate


def turn(
    candidates: Sequence[Candidate], stale_after: float, room_share: float = 1.0
) -> list[Candidate]:
    """The candidates that may be picked now; empty when none may (see `saturation`).

    A pod with at least `room_share` of its queue taken counts as full.
    """
    live = [c for c in candidates if not c.draining and not c.ejected]
    fresh = [c for c in live if c.fresh(stale_after)]
    if fresh:
        return [c for c in fresh if not c.occupied(room_share)]
    if live:
        return live
    return [c for c in candidates if not c.draining]


class Picker(Protocol):
    def choose(self, turn: Sequence[Candidate], audio_seconds: float) -> Candidate:
        """Chooses one of a non-empty list for a request of about `audio_seconds` of audio."""


def fallback_speed(turn: Sequence[Candidate]) -> float:
    """The speed assumed for a pod that has not measured its own: the others' mean, or 1."""
    known = [c.audio_seconds_per_second for c in turn if c.audio_seconds_per_second > 0]
    return sum(known) / len(known) if known else 1.0


def predicted_finish(candidate: Candidate, audio_seconds: float, fallback: float) -> float:
    """Seconds until the pod would finish a request of `audio_seconds`, were it sent now.

    The audio it holds, plus what this router sent since its report, plus the
    request's own, at the pod's measured speed; plus its recent time to first
    audio, which is high while the pod is slow now (stalled, throttled) in a
    way its last report cannot show yet.
    """
    speed = candidate.audio_seconds_per_second or fallback
    work = candidate.queued_audio_seconds + candidate.unreported_audio_seconds + audio_seconds
    return candidate.first_audio_seconds + work / speed


class FinishTime:
    """The pod predicted to finish this request first (`predicted_finish`).

    Unlike a queue count, this knows that a pod three times slower with a
    short queue is no better than a fast one with a longer queue, and that a
    1,000-word request weighs more than a 10-word one. Herding in a burst is
    prevented by the audio this router sent since each pod's last report.
    Ties (an idle fleet) go round robin.
    """

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, turn: Sequence[Candidate], audio_seconds: float) -> Candidate:
        fallback = fallback_speed(turn)
        start = next(self._counter) % len(turn)
        rotated = [*turn[start:], *turn[:start]]
        return min(rotated, key=lambda c: predicted_finish(c, audio_seconds, fallback))


class PowerOfTwoChoices:
    """Two candidates at random, the lower score wins: near-best balance without herding.

    Always taking the least loaded pod would send every request of a burst to
    the same pod before its next load report; two random choices spread them.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, turn: Sequence[Candidate], audio_seconds: float) -> Candidate:
        if len(turn) == 1:
            return turn[0]
        first = self._rng.randrange(len(turn))
        second = self._rng.randrange(len(turn) - 1)
        second += second >= first
        a, b = turn[first], turn[second]
        return b if b.score < a.score else a


class RoundRobin:
    """Each candidate in turn, blind to load: the baseline the benchmark compares with."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, turn: Sequence[Candidate], audio_seconds: float) -> Candidate:
        return turn[next(self._counter) % len(turn)]


PICKERS = {"finish-time": FinishTime, "power-of-two": PowerOfTwoChoices, "round-robin": RoundRobin}
