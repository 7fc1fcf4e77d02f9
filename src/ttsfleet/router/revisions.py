"""Canary traffic splitting: which revision of a pool a request goes to (pure).

A pool in a canary rollout runs two revisions with a share of traffic each.
Each request draws one number; in every pool that has weights, only the
pods of the revision it lands on stay candidates. Revisions without pods
among the candidates (none ready, all tried) share nothing, so a request
still goes to the other revision rather than fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ttsfleet.router.endpoints import Candidate


def drawn_revision(weights: Mapping[str, int], present: set[str], draw: float) -> str | None:
    """The revision `draw` (in [0, 1)) lands on among the weighted ones that have pods."""
    shares = [(revision, w) for revision, w in sorted(weights.items()) if revision in present]
    total = sum(w for _, w in shares if w > 0)
    if total <= 0:
        return None
    point = draw * total
    for revision, weight in shares:
        if point < weight:
            return revision
        point -= max(weight, 0)
    return shares[-1][0]


def served(candidates: Sequence[Candidate], weights: Mapping[str, int]) -> list[Candidate]:
    """The pool's pods of the revision with the most traffic (the stable one), if it has any."""
    if not weights:
        return list(candidates)
    most = max(sorted(weights), key=lambda revision: weights[revision])
    return [c for c in candidates if c.revision == most] or list(candidates)


def split(
    candidates: Sequence[Candidate], weights: Mapping[str, Mapping[str, int]], draw: float
) -> list[Candidate]:
    """The candidates left once each weighted pool is narrowed to its drawn revision."""
    chosen: dict[str, str | None] = {}
    for pool, shares in weights.items():
        present = {c.revision for c in candidates if c.pool == pool}
        chosen[pool] = drawn_revision(shares, present, draw)
    return [c for c in candidates if chosen.get(c.pool) is None or c.revision == chosen[c.pool]]
