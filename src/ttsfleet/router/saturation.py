"""When to shed: a request nobody has room for is refused at once, not queued in the router.

Holding requests in the router would hide overload from clients and from the
autoscaler, which watches the pods' queues. So when every pod that could take
a request reports a full queue, the forwarder answers RESOURCE_EXHAUSTED,
optionally after a short bounded wait for a queue to make room.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttsfleet.router.endpoints import Candidate


def saturated(candidates: Sequence[Candidate], stale_after: float, room_share: float = 1.0) -> bool:
    """True when pods could take the request but every one with a fresh report is full
    (has at least `room_share` of its queue taken: less than all of it for batch work)."""
    live = [c for c in candidates if not c.draining and not c.ejected and c.fresh(stale_after)]
    return bool(live) and all(c.occupied(room_share) for c in live)
