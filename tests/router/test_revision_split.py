"""Canary splits as pure decisions: which revision's pods stay candidates for one draw, and
which pods and weights discovery reads from a pool's status and its Services' slices."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ttsfleet.manifests import POOL_LABEL
from ttsfleet.rollouts import CANARY_LABEL, REVISION_LABEL
from ttsfleet.router.discovery.kubernetes import topology
from ttsfleet.router.endpoints import Candidate
from ttsfleet.router.revisions import drawn_revision, served, split


def pod(address: str, pool: str, revision: str) -> Candidate:
    return Candidate(address, pool, 0, 8, 0, 0.1, False, False, revision=revision)


STABLE = [pod("a:1", "english", "old"), pod("a:2", "english", "old")]
CANARY = [pod("b:1", "english", "new")]
WEIGHTS = {"english": {"old": 75, "new": 25}}


def test_draws_land_on_revisions_by_weight() -> None:
    rng = random.Random(3)
    counts = Counter(
        {c.revision for c in split(STABLE + CANARY, WEIGHTS, rng.random())}.pop()
        for _ in range(4000)
    )
    assert 900 <= counts["new"] <= 1100 and counts["new"] + counts["old"] == 4000


def test_a_revision_without_candidates_gets_no_share() -> None:
    """All canary pods tried or gone: every request goes to the stable pods."""
    assert split(STABLE, WEIGHTS, 0.99) == STABLE
    assert split(CANARY, WEIGHTS, 0.0) == CANARY
    assert drawn_revision({"old": 0, "new": 0}, {"old", "new"}, 0.5) is None


def test_listing_asks_the_revision_with_the_most_traffic() -> None:
    assert served(STABLE + CANARY, WEIGHTS["english"]) == STABLE
    assert served(CANARY, WEIGHTS["english"]) == CANARY
    assert served(CANARY, {}) == CANARY


def test_pools_without_weights_are_untouched() -> None:
    other = [pod("c:1", "french", ""), pod("c:2", "french", "x")]
    assert split(other + STABLE + CANARY, WEIGHTS, 0.1) == [*other, *CANARY]


def _slice(ip: str, revision: str, canary: bool) -> dict[str, Any]:
    labels = {POOL_LABEL: "english", REVISION_LABEL: revision}
    if canary:
        labels[CANARY_LABEL] = "english"
    return {
        "metadata": {"name": f"s-{ip}", "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "grpc", "port": 50051}],
        "endpoints": [{"addresses": [ip]}],
    }


def test_kubernetes_discovery_weighs_a_canary_only_while_the_status_says_it_runs() -> None:
    slices = [_slice("10.0.0.1", "old", False), _slice("10.0.0.2", "new", True)]
    body: dict[str, Any] = {"metadata": {"name": "english"}, "spec": {"voices": ["joe"]}}
    body["status"] = {
        "rollout": {
            "phase": "Canary",
            "stableRevision": "old",
            "canaryRevision": "new",
            "canaryPercent": 10,
        }
    }
    during = topology([body], slices).pools["english"]
    assert during.weights == {"old": 90, "new": 10}
    assert during.revisions == {"10.0.0.1:50051": "old", "10.0.0.2:50051": "new"}

    body["status"] = {"rollout": {"phase": "RolledBack", "stableRevision": "old"}}
    after = topology([body], slices).pools["english"]
    assert (after.weights, after.addresses) == ({}, frozenset({"10.0.0.1:50051"}))
