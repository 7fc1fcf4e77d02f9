"""The write tool's guardrail: a scale asked for by one identity acts only once another approves.

Proposals live in memory (the server runs one replica) and expire: an
approval given long after the ask would act on a fleet nobody looked at.
A proposal is taken exactly once, so one approval cannot act twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass


class ApprovalError(ValueError):
    """Why an approval cannot act, in words for the caller."""


@dataclass(frozen=True)
class ScaleProposal:
    id: str
    namespace: str
    pool: str
    replicas: int
    requested_by: str
    created: float


class Approvals:
    """Pending scale proposals, by id."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._pending: dict[str, ScaleProposal] = {}

    def propose(self, who: str, namespace: str, pool: str, replicas: int) -> ScaleProposal:
        self._expire()
        proposal = ScaleProposal(uuid.uuid4().hex, namespace, pool, replicas, who, self._clock())
        self._pending[proposal.id] = proposal
        return proposal

    def take(self, proposal_id: str, approver: str) -> ScaleProposal:
        """The proposal, removed, if ``approver`` is someone other than who asked."""
        self._expire()
        proposal = self._pending.get(proposal_id)
        if proposal is None:
            raise ApprovalError(f"no pending scale proposal {proposal_id!r} (unknown or expired)")
        if proposal.requested_by == approver:
            raise ApprovalError(
                f"{approver} proposed this scale; a second identity must approve it"
            )
        del self._pending[proposal_id]
        return proposal

    def _expire(self) -> None:
        oldest = self._clock() - self._ttl
        for key in [k for k, p in self._pending.items() if p.created < oldest]:
            del self._pending[key]
