"""Assembles an inference pod: engines, scheduler, gRPC server, health, reflection, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from ttsfleet import tracing, wire
from ttsfleet.inference.engine import VoiceEngine
from ttsfleet.inference.engines.registry import load_engine
from ttsfleet.inference.metrics import InferenceMetrics
from ttsfleet.inference.scheduler import Scheduler, Synthesis
from ttsfleet.inference.service import LoadReporterService, SynthesisService, add_to_server
from ttsfleet.manifests import PodConfig
from ttsfleet.tls import TLSFiles, server_credentials

log = logging.getLogger(__name__)

# Seconds with work and no finished step before `wire.LIVENESS_SERVICE` fails.
DEFAULT_STALL_SECONDS = 120.0


def load_engines(config: PodConfig) -> dict[str, VoiceEngine]:
    engines = {}
    for voice in config.voices:
        started = time.monotonic()
        engines[voice.name] = load_engine(voice, config)
        log.info(
            "voice loaded",
            extra={
                "voice": voice.name,
                "engine": voice.engine,
                "seconds": round(time.monotonic() - started, 2),
            },
        )
    return engines


class InferenceServer:
    """One running pod. `start` binds the ports; `stop` drains then shuts down."""

    def __init__(
        self,
        config: PodConfig,
        engines: Mapping[str, VoiceEngine],
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ) -> None:
        self._stall_seconds = stall_seconds
        self.metrics = InferenceMetrics()
        self.metrics.queue_capacity.set(config.queue_limit)
        self.scheduler = Scheduler(
            queue_limit=config.queue_limit,
            max_batch_size=config.batching.max_batch_size,
            max_wait_s=config.batching.max_wait_ms / 1000,
            on_batch=self.metrics.batch_size.observe,
            on_admit=self._admitted,
        )
        self._config = config
        self._engines = engines
        self._health = health.aio.HealthServicer()
        self._server = grpc.aio.server(interceptors=tracing.server_interceptors())
        self._worker: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        self._service_names: list[str] = []
        self._metrics_http: Any = None
        self._health_server: grpc.aio.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self.health_port = 0

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics_port: int | None = 0,
        tls: TLSFiles | None = None,
        health_port: int | None = None,
    ) -> None:
        """Binds the ports. With `tls`, callers need a client certificate; the kubelet's
        gRPC probes cannot present one, so `health_port` then serves health checks alone,
        in plaintext."""
        synthesis = SynthesisService(self._engines, self.scheduler, self._config, self.metrics)
        load = LoadReporterService(self.scheduler)
        self._service_names = add_to_server(self._server, synthesis, load)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        address = f"{host}:{port}"
        self.port = (
            self._server.add_secure_port(address, server_credentials(tls))
            if tls
            else self._server.add_insecure_port(address)
        )
        if health_port is not None:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(f"{host}:{health_port}")
            await self._health_server.start()
        if metrics_port is not None:
            self._metrics_http, _ = start_http_server(
                metrics_port, addr=host, registry=self.metrics.registry
            )
            self.metrics_port = self._metrics_http.server_port
        self._worker = asyncio.create_task(self.scheduler.run(), name="scheduler")
        self._gauges = asyncio.create_task(self._track_load(), name="load-gauges")
        await self._server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(wire.LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "inference server listening",
            extra={"port": self.port, "metrics_port": self.metrics_port},
        )

    async def _set_health(self, status: int) -> None:
        for name in ("", *self._service_names):
            await self._health.set(name, status)

    def _admitted(self, work: Synthesis) -> None:
        self.metrics.queue_wait.labels(work.priority).observe(time.monotonic() - work.queued_at)

    async def _track_load(self) -> None:
        """Keeps the load gauges and the liveness check current (at least once a second)."""
        live = True
        while True:
            load = self.scheduler.load
            self.metrics.queue_depth.set(load.queue_depth)
            self.metrics.in_flight.set(load.in_flight)
            self.metrics.queued_audio_seconds.set(load.queued_audio_seconds)
            self.metrics.audio_seconds_per_second.set(load.audio_seconds_per_second)
            batch = self.metrics.class_queue_depth.labels(wire.Priority.BATCH)
            batch.set(load.batch_queue_depth)
            self.metrics.class_queue_depth.labels(wire.Priority.INTERACTIVE).set(
                load.queue_depth - load.batch_queue_depth
            )
            stalled = self.scheduler.stalled_for()
            if live != (stalled < self._stall_seconds):
                live = not live
                if not live:
                    log.error(
                        "engine made no progress; failing liveness",
                        extra={"seconds": round(stalled, 1)},
                    )
                await self._health.set(
                    wire.LIVENESS_SERVICE,
                    health_pb2.HealthCheckResponse.SERVING
                    if live
                    else health_pb2.HealthCheckResponse.NOT_SERVING,
                )
            await self.scheduler.wait_for_change(1.0)

    async def stop(self, grace: float = 30.0) -> None:
        """Drains: refuse new work, report NOT_SERVING, finish what was accepted, then stop."""
        self.scheduler.drain()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        deadline = asyncio.get_running_loop().time() + grace
        while not self.scheduler.idle and asyncio.get_running_loop().time() < deadline:
            await self.scheduler.wait_for_change(0.1)
        await self._server.stop(max(deadline - asyncio.get_running_loop().time(), 1.0))
        if self._health_server:
            await self._health_server.stop(None)
        for task in (self._worker, self._gauges):
            if task:
                task.cancel()
        if self._metrics_http:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
