"""Held requests: a pool that sleeps at zero pods is woken, not refused.

A pool whose autoscaling allows zero replicas has no pod while idle. A
request for it is held here instead of answered UNAVAILABLE: the router
asks for a first pod (the `Waker`: in a cluster the pool's scale
subresource 0 → 1, in the local fleet a pod process) and the request goes
on as soon as a pod is in the datastore. Holding has three bounds: the hold
limit (`wake_hold_seconds`, then UNAVAILABLE, which job workers treat as the
fleet away, not as a failed attempt), the caller's deadline (then
DEADLINE_EXCEEDED) and the number of requests held per pool (beyond it,
RESOURCE_EXHAUSTED at once). While requests wait, demand is signalled again
every few seconds, so a lost signal or a pool put back to sleep meanwhile
cannot strand them.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from ttsfleet.errors import TTSError
from ttsfleet.router.discovery import Waker
from ttsfleet.router.endpoints import Datastore
from ttsfleet.router.metrics import RouterMetrics
from ttsfleet.router.settings import RouterSettings

log = logging.getLogger(__name__)

SIGNAL_EVERY_S = 5.0
Code = grpc.StatusCode


class WakeUps:
    """The requests held for sleeping pools, and each pool's wake-up in progress."""

    def __init__(
        self,
        datastore: Datastore,
        metrics: RouterMetrics,
        settings: RouterSettings,
        waker: Waker | None,
    ) -> None:
        self._datastore = datastore
        self._metrics = metrics
        self._settings = settings
        self._waker = waker
        self._held: dict[str, int] = {}
        self._held_seconds: dict[str, float] = {}
        # pool → when its wake-up began (its first held request arrived)
        self._began: dict[str, float] = {}

    def sleeping_pool(self, voice: str) -> str | None:
        """The pool to wake for `voice`, when no pod serves it and one may be woken."""
        if self._waker is None or self._settings.wake_hold_seconds <= 0:
            return None
        return self._datastore.sleeping_pool(voice)

    async def hold(
        self, pool: str, voice: str, time_left: float | None, audio_seconds: float
    ) -> None:
        """Returns once a pod serves `voice`; raises TTSError when a bound comes first.

        `time_left` is the caller's remaining deadline (None: none);
        `audio_seconds` the request's predicted audio, shown as held demand.
        """
        held = self._held.get(pool, 0)
        if held >= self._settings.max_held_requests:
            raise TTSError(
                Code.RESOURCE_EXHAUSTED,
                f"pool {pool!r} is waking from zero and already holds {held} requests "
                f"(the limit); retry later",
            )
        hold_for = self._settings.wake_hold_seconds
        limit = hold_for if time_left is None else min(time_left, hold_for)
        started = time.monotonic()
        give_up = started + limit
        self._count(pool, +1, audio_seconds)
        if pool not in self._began:
            self._began[pool] = started
            self._metrics.wakeups.labels(pool).inc()
            log.info("waking pool", extra={"pool": pool})
        log.info("holding request while its pool wakes", extra={"pool": pool})
        try:
            await self._wait(pool, voice, give_up)
        finally:
            self._count(pool, -1, -audio_seconds)
            if not self._held.get(pool):
                self._began.pop(pool, None)  # woken, or every request gave up
        if self._datastore.candidates(voice):
            return
        if limit < hold_for:
            raise TTSError(
                Code.DEADLINE_EXCEEDED,
                f"the deadline ran out while pool {pool!r} was waking from zero",
            )
        raise TTSError(
            Code.UNAVAILABLE,
            f"pool {pool!r} did not wake from zero within {hold_for:g} s; retry later",
        )

    async def _wait(self, pool: str, voice: str, give_up: float) -> None:
        """Signals demand now and every few seconds until a pod serves `voice` or time is up."""
        assert self._waker is not None, "only sleeping_pool's pools are held"
        next_signal = 0.0
        while not self._datastore.candidates(voice):
            now = time.monotonic()
            if now >= give_up:
                return
            if now >= next_signal:
                next_signal = now + SIGNAL_EVERY_S
                try:
                    await asyncio.wait_for(self._waker.wake(pool), give_up - now)
                except Exception as error:  # the API server away: the next signal may pass
                    log.warning("waking pool failed", extra={"pool": pool, "error": repr(error)})
            await self._datastore.wait_for_change(min(give_up, next_signal) - time.monotonic())
        began = self._began.get(pool)
        if began is not None:
            seconds = time.monotonic() - began
            self._metrics.wake_seconds.labels(pool).observe(seconds)
            self._began.pop(pool)
            log.info("pool woke", extra={"pool": pool, "seconds": round(seconds, 3)})

    def _count(self, pool: str, requests: int, audio_seconds: float) -> None:
        self._held[pool] = self._held.get(pool, 0) + requests
        self._held_seconds[pool] = max(self._held_seconds.get(pool, 0.0) + audio_seconds, 0.0)
        self._metrics.held_requests.labels(pool).set(self._held[pool])
        self._metrics.held_audio_seconds.labels(pool).set(self._held_seconds[pool])
