"""Keeps every pod's load fresh: one WatchLoad stream per pod, reopened when it breaks.

Pods also put their queue depth in every response's metadata (see the
forwarder); the stream adds what responses cannot: news from idle pods, the
queue's capacity, and that a pod has begun draining.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from ttsfleet import wire
from ttsfleet.proto import ttsfleet_v1_pb2
from ttsfleet.router.endpoints import Datastore, Endpoint
from ttsfleet.router.metrics import RouterMetrics

log = logging.getLogger(__name__)

FIRST_BACKOFF, MAX_BACKOFF = 0.05, 2.0


class LoadWatcher:
    """Runs one watch task per pod in the datastore."""

    def __init__(
        self,
        datastore: Datastore,
        metrics: RouterMetrics,
        min_interval_ms: int = 20,
        max_interval_ms: int = 500,
    ) -> None:
        self._datastore = datastore
        self._metrics = metrics
        self._request = ttsfleet_v1_pb2.WatchLoadRequest(
            min_interval_ms=min_interval_ms, max_interval_ms=max_interval_ms
        )
        self._tasks: dict[Endpoint, asyncio.Task[None]] = {}

    def sync(self) -> None:
        """Starts watching new pods and stops watching gone ones."""
        current = set(self._datastore.endpoints)
        for endpoint in self._tasks.keys() - current:
            self._tasks.pop(endpoint).cancel()
        for endpoint in current - self._tasks.keys():
            self._tasks[endpoint] = asyncio.get_running_loop().create_task(
                self._watch(endpoint), name=f"load-watch {endpoint.address}"
            )

    def restart(self) -> None:
        """Reopens every pod's stream (on its current channel, after new TLS files)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self.sync()

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _watch(self, endpoint: Endpoint) -> None:
        """Follows one pod's reports; backs off (bounded) while the pod cannot be reached."""

        gauge = self._metrics.queue_depth.labels(endpoint.pool, endpoint.address)
        backoff = FIRST_BACKOFF
        while True:
            # The channel may be new since the last try (renewed TLS files).
            watch = endpoint.channel.unary_stream(
                wire.WATCH_LOAD,
                request_serializer=ttsfleet_v1_pb2.WatchLoadRequest.SerializeToString,
                response_deserializer=ttsfleet_v1_pb2.LoadReport.FromString,
            )
            call = watch(self._request, wait_for_ready=True)
            try:
                async for report in call:
                    self._datastore.report(
                        endpoint,
                        report.queue_depth,
                        queue_capacity=report.queue_capacity,
                        draining=report.draining,
                        queued_audio_seconds=report.queued_audio_seconds,
                        audio_seconds_per_second=report.audio_seconds_per_second,
                    )
                    gauge.set(report.queue_depth)
                    backoff = FIRST_BACKOFF
                    if report.draining:
                        # A draining pod never takes work again, and an open stream would
                        # hold up its shutdown.
                        log.info("pod is draining", extra={"pod": endpoint.address})
                        return
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                    log.info("pod has no load stream", extra={"pod": endpoint.address})
                    return
                log.debug(
                    "load stream broke", extra={"pod": endpoint.address, "code": error.code().name}
                )
            finally:
                call.cancel()
            self._datastore.forget_load(endpoint)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
