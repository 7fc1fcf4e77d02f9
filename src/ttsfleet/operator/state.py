"""What the operator remembers about each pool between handler calls.

Memory only: everything here can be lost (a restart, a takeover by another
replica) and is rebuilt by reconciling again. The lock serializes one
pool's reconcile and status writes, which several handlers can trigger at
once (the pool itself, a voice, an owned object, the autoscaler's timer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ttsfleet.manifests import Voice
from ttsfleet.operator.autoscale_policy import LoadSample, Recommendation
from ttsfleet.operator.rollout import Decision
from ttsfleet.operator.status import Problem

PoolKey = tuple[str, str]  # (namespace, name)
# A pool's desired objects, or why it cannot have them.
Plan = list[dict[str, Any]] | Problem


@dataclass
class PoolState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The pool generation last reconciled (None: not since this process started).
    observed_generation: int | None = None
    needs_reconcile: bool = False
    problem: Problem | None = None
    config_hash: str | None = None
    load: LoadSample | None = None
    history: tuple[Recommendation, ...] = ()
    # The replica count the autoscaler last decided on (None: no decision yet);
    # more replicas than that means someone scaled up since (a wake-up).
    replicas_decided: int | None = None
    last_scale_time: str | None = None
    # The status last written, so unchanged statuses are not written again.
    last_status: Mapping[str, Any] | None = None
    # The last plan, with the versions of the pool and voices it was built from.
    plan: tuple[Hashable, Plan] | None = None
    # Rollouts: the last decision, each known revision's voices, the verdict acted on.
    decision: Decision | None = None
    revisions: dict[str, list[Voice]] = field(default_factory=dict)
    verdict_seen: str | None = None


class PoolStates:
    """Per-pool state, created on first use and dropped when the pool is deleted."""

    def __init__(self) -> None:
        self._pools: dict[PoolKey, PoolState] = {}

    def __getitem__(self, key: PoolKey) -> PoolState:
        return self._pools.setdefault(key, PoolState())

    def forget(self, key: PoolKey) -> None:
        self._pools.pop(key, None)

    def __len__(self) -> int:
        return len(self._pools)
