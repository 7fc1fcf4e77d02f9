"""Which pod gets a request: pure decisions over `Candidate` snapshots.

Every pick first narrows the candidates to those whose turn it is: pods with
a fresh load report (younger than `stale_after`) and room in their queue. A
stale report means "capacity unknown", not "idle", so pods without one are
used only when no pod has a fresh report at all (just after start-up, or pods
that do not report). Draining pods never get a turn; ejected ones only when
every other pod is ejected too (their ejection may be out of date, and a
refusal would be certain). Among those whose turn it is, a picker chooses.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from ttsfleet.router.endpoints import Candidate


def turn(candidates: Sequence[Candidate], stale_after: float) -> list[Candidate]:
    """The candidates that may be picked now; empty when none may (see `saturation`)."""
    live = [c for c in candidates if not c.draining and not c.ejected]
    fresh = [c for c in live if c.fresh(stale_after)]
    if fresh:
        return [c for c in fresh if not c.full]
    if live:
        return live
    return [c for c in candidates if not c.draining]


class Picker(Protocol):
    def choose(self, turn: Sequence[Candidate]) -> Candidate:
        """Chooses one of a non-empty list."""


class PowerOfTwoChoices:
    """Two candidates at random, the lower score wins: near-best balance without herding.

    Always taking the least loaded pod would send every request of a burst to
    the same pod before its next load report; two random choices spread them.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, turn: Sequence[Candidate]) -> Candidate:
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

    def choose(self, turn: Sequence[Candidate]) -> Candidate:
        return turn[next(self._counter) % len(turn)]


PICKERS = {"power-of-two": PowerOfTwoChoices, "round-robin": RoundRobin}
