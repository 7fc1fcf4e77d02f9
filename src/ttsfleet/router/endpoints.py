"""The datastore: every pod the router may send to, and what it knows about each.

Discovery says which pods exist; load reports say how busy each is and how
fast it speaks (with the time they arrived, so staleness is explicit); the
forwarder counts the router's own in-flight requests, the audio it sent since
the pod's last report, how long each pod took to start speaking (`latency`),
and failures, and ejects pods that keep failing. Decisions are made elsewhere, on `Candidate` snapshots.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from ttsfleet import tls, tracing
from ttsfleet.router.discovery import Topology
from ttsfleet.router.latency import PeakEwma

if TYPE_CHECKING:  # settings name the pickers, which read this module's snapshots
    from ttsfleet.router.settings import RouterSettings


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pod as the picker sees it at one instant."""

    address: str
    pool: str
    queue_depth: int
    queue_capacity: int  # 0: not known yet
    router_in_flight: int
    report_age: float | None  # seconds since the last load report; None: never reported
    draining: bool
    ejected: bool
    # Seconds of audio the pod holds (its report) and has been sent since (this router).
    queued_audio_seconds: float = 0.0
    unreported_audio_seconds: float = 0.0
    audio_seconds_per_second: float = 0.0  # 0: not measured yet
    # Peak-EWMA of the pod's time to first audio: high while it is slow now.
    first_audio_seconds: float = 0.0
    revision: str = ""  # which revision of its pool's voices it runs ("" when not told)

    def fresh(self, stale_after: float) -> bool:
        return self.report_age is not None and self.report_age <= stale_after

    def occupied(self, share: float) -> bool:
        """Whether at least `share` of the pod's known queue capacity is taken."""
        return self.queue_capacity > 0 and self.queue_depth >= max(
            1, math.ceil(self.queue_capacity * share)
        )

    @property
    def full(self) -> bool:
        return self.occupied(1.0)

    @property
    def score(self) -> int:
        """Lower is better: work waiting at the pod plus work this router has sent it."""
        return self.queue_depth + self.router_in_flight


class Endpoint:
    """One pod: its channel and its mutable state."""

    def __init__(
        self,
        address: str,
        pool: str,
        voices: frozenset[str],
        channel: grpc.aio.Channel,
        revision: str = "",
    ) -> None:
        self.address = address
        self.pool = pool
        self.revision = revision
        self.voices = voices
        self.channel = channel
        self.queue_depth = 0
        self.queue_capacity = 0
        self.draining = False
        self.reported_at: float | None = None
        self.queued_audio_seconds = 0.0
        self.unreported_audio_seconds = 0.0
        self.audio_seconds_per_second = 0.0
        self.first_audio = PeakEwma()
        self.in_flight = 0
        self.failures = 0
        self.ejections = 0
        self.ejected_until = 0.0

    def snapshot(self, now: float) -> Candidate:
        return Candidate(
            address=self.address,
            pool=self.pool,
            revision=self.revision,
            queue_depth=self.queue_depth,
            queue_capacity=self.queue_capacity,
            router_in_flight=self.in_flight,
            report_age=None if self.reported_at is None else now - self.reported_at,
            draining=self.draining,
            ejected=self.ejected_until > now,
            queued_audio_seconds=self.queued_audio_seconds,
            unreported_audio_seconds=self.unreported_audio_seconds,
            audio_seconds_per_second=self.audio_seconds_per_second,
            first_audio_seconds=self.first_audio.seconds,
        )


class Datastore:
    """Follows the published topology and holds per-pod state between requests."""

    def __init__(self, settings: RouterSettings) -> None:
        self._settings = settings
        self._tls = (
            tls.ClientTLS(settings.pod_tls, settings.pod_tls_server_name)
            if settings.pod_tls
            else None
        )
        self._endpoints: dict[str, Endpoint] = {}
        self._pool_voices: dict[str, frozenset[str]] = {}
        self.weights: dict[str, Mapping[str, int]] = {}  # pool → revision → share of traffic
        self._scale_from_zero: frozenset[str] = frozenset()
        self.voices: frozenset[str] = frozenset()
        self._closing: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.default_voice = ""

    def apply(self, topology: Topology) -> list[Endpoint]:
        """Adds new pods and drops gone ones (their requests finish first); returns the dropped."""
        self.default_voice = topology.default_voice
        self._pool_voices = {name: pool.voices for name, pool in topology.pools.items()}
        self.weights = {name: pool.weights for name, pool in topology.pools.items() if pool.weights}
        self._scale_from_zero = frozenset(
            name for name, pool in topology.pools.items() if pool.scales_from_zero
        )
        self.voices = frozenset().union(*self._pool_voices.values())
        wanted = {
            address: pool for pool in topology.pools.values() for address in sorted(pool.addresses)
        }
        removed = [ep for address, ep in self._endpoints.items() if address not in wanted]
        for endpoint in removed:
            del self._endpoints[endpoint.address]
            self._close_later(endpoint.channel)
        for address, pool in wanted.items():
            known = self._endpoints.get(address)
            revision = pool.revisions.get(address, "")
            if known and known.pool == pool.name:
                known.voices = pool.voices
                known.revision = revision
                continue
            if known:
                removed.append(known)
                self._close_later(known.channel)
            channel = self._connect(address)
            self._endpoints[address] = Endpoint(address, pool.name, pool.voices, channel, revision)
        self._notify()
        return removed

    def _connect(self, address: str) -> grpc.aio.Channel:
        return tls.channel(address, self._tls, tracing.client_interceptors())

    def renew_tls(self) -> bool:
        """New channels for every pod once the TLS files changed; calls in flight finish on the old."""
        if self._tls is None or not self._tls.changed():
            return False
        for endpoint in self._endpoints.values():
            self._close_later(endpoint.channel)
            endpoint.channel = self._connect(endpoint.address)
        self._notify()
        return True

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        """Closes a dropped pod's channel once its requests finish (or the grace runs out)."""
        task = asyncio.get_running_loop().create_task(channel.close(self._settings.close_grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.channel.close(None)
        self._endpoints.clear()
        await asyncio.gather(*self._closing)

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    def get(self, address: str) -> Endpoint | None:
        return self._endpoints.get(address)

    @property
    def pools(self) -> dict[str, frozenset[str]]:
        """Pool name → voices, including pools that have no pod right now."""
        return dict(self._pool_voices)

    def sleeping_pool(self, voice: str) -> str | None:
        """A pool that serves `voice` (any, when empty) and sleeps at zero pods now, if any."""
        awake = {endpoint.pool for endpoint in self._endpoints.values()}
        for name in sorted(self._scale_from_zero - awake):
            if not voice or voice in self._pool_voices[name]:
                return name
        return None

    def candidates(self, voice: str, exclude: Collection[str] = ()) -> list[Candidate]:
        """Snapshots of the pods serving `voice` (any pod when empty), minus `exclude`."""
        now = time.monotonic()
        return [
            ep.snapshot(now)
            for ep in self._endpoints.values()
            if (not voice or voice in ep.voices) and ep.address not in exclude
        ]

    def report(
        self,
        endpoint: Endpoint,
        queue_depth: int,
        *,
        queue_capacity: int | None = None,
        draining: bool | None = None,
        queued_audio_seconds: float | None = None,
        audio_seconds_per_second: float | None = None,
    ) -> None:
        """Records a pod's load, from its load stream or from a response's metadata.

        A report of queued audio counts everything sent before it, as far as
        this router can tell: the audio sent since the last one starts again at 0.
        """
        endpoint.queue_depth = queue_depth
        if queue_capacity is not None:
            endpoint.queue_capacity = queue_capacity
        if draining is not None:
            endpoint.draining = draining
        if queued_audio_seconds is not None:
            endpoint.queued_audio_seconds = queued_audio_seconds
            endpoint.unreported_audio_seconds = 0.0
        if audio_seconds_per_second is not None:
            endpoint.audio_seconds_per_second = audio_seconds_per_second
        endpoint.reported_at = time.monotonic()
        self._notify()

    def sent(self, endpoint: Endpoint, audio_seconds: float) -> None:
        """Counts a request sent to the pod until its next load report includes it."""
        endpoint.unreported_audio_seconds += audio_seconds

    def first_audio(self, endpoint: Endpoint, seconds: float) -> None:
        """How long the pod took to start speaking a request: its `latency` estimate's input."""
        endpoint.first_audio.observe(seconds)

    def forget_load(self, endpoint: Endpoint) -> None:
        """The load stream broke: what it said is no longer known to hold."""
        endpoint.reported_at = None

    def succeeded(self, endpoint: Endpoint) -> None:
        """A success clears the record: only failures in a row, across ejections, add up."""
        endpoint.failures = 0
        endpoint.ejections = 0

    def failed(self, endpoint: Endpoint) -> bool:
        """Counts a failure; returns True when it ejects the pod."""
        endpoint.failures += 1
        settings = self._settings
        if endpoint.failures < settings.eject_after_failures:
            return False
        endpoint.failures = 0
        endpoint.ejections += 1
        seconds = min(settings.ejection_seconds * endpoint.ejections, settings.max_ejection_seconds)
        endpoint.ejected_until = time.monotonic() + seconds
        return True

    async def wait_for_change(self, seconds: float) -> None:
        """Returns at the next load report or topology change, or after `seconds`."""
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
