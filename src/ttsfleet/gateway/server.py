"""Runs the gateway: the HTTP API (uvicorn), the gRPC Jobs service, and in-process job workers.

One process serves both front ends over one JobService; workers may run in it
(`workers` > 0, the single-process install) or as separate `ttsfleet worker`
processes sharing the backend. Signals belong to the caller (the command or
the local fleet), so uvicorn's own handlers are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ttsfleet.gateway.app import create_app
from ttsfleet.gateway.auth import ApiKeys, Gatekeeper, RateLimit
from ttsfleet.gateway.grpc_jobs import JobsService
from ttsfleet.gateway.openai_voices import VoiceMap
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.options import Parts
from ttsfleet.jobs.service import JobService
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

log = logging.getLogger(__name__)
JOBS_SERVICE = ttsfleet_v1_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class Gateway:
    """The running gateway; `start` binds, `stop` drains."""

    def __init__(
        self,
        parts: Parts,
        *,
        workers: int = 1,
        max_queued: int = 10_000,
        max_streams: int = 64,
        api_keys: ApiKeys | None = None,
        rate: RateLimit | None = None,
        max_queued_per_tenant: int = 0,
        max_body_bytes: int = 1 << 20,
        openai_voices: VoiceMap | None = None,
    ) -> None:
        self.jobs = JobService(
            parts.backend,
            parts.results,
            parts.fleet,
            max_queued,
            max_queued_per_tenant=max_queued_per_tenant,
        )
        self.worker = parts.worker(workers) if workers else None
        self.worker_task: asyncio.Task[None] | None = None
        self.gatekeeper = Gatekeeper(api_keys, rate or RateLimit(0, 0), parts.metrics)
        self.app = create_app(
            self.jobs,
            parts.fleet,
            max_streams,
            self.gatekeeper,
            max_body_bytes,
            self.alive,
            openai_voices,
        )
        self._max_body = max_body_bytes
        # Made only when served: an unstarted aio server fails at interpreter exit.
        self._grpc: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._http: _Uvicorn | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_workers = asyncio.Event()
        self.port = 0
        self.grpc_port = 0

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, grpc_port: int | None = 0
    ) -> None:
        """Serves HTTP on host:port and gRPC on host:grpc_port (None: no gRPC); 0 picks a port."""
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        self.port = listener.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._http = _Uvicorn(config)
        self._tasks.append(asyncio.ensure_future(self._http.serve(sockets=[listener])))
        if grpc_port is not None:
            self._grpc = grpc.aio.server(
                options=[("grpc.max_receive_message_length", self._max_body)]
            )
            ttsfleet_v1_pb2_grpc.add_JobsServicer_to_server(
                JobsService(self.jobs, self.gatekeeper), self._grpc
            )
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
            reflection.enable_server_reflection(
                [JOBS_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], self._grpc
            )
            self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
            await self._grpc.start()
            for name in ("", JOBS_SERVICE):
                await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.worker:
            self.worker_task = asyncio.ensure_future(self.worker.run(self._stop_workers))
            self._tasks.append(self.worker_task)
        for _ in range(1000):  # bounded: uvicorn starts in milliseconds
            if self._http.started or self._tasks[0].done():
                break
            await asyncio.sleep(0.01)
        if self._tasks[0].done():
            self._tasks[0].result()  # raises why it could not start
        log.info("gateway listening", extra={"port": self.port, "grpc_port": self.grpc_port})

    def alive(self) -> bool:
        """False once the in-process worker gave up (liveness: restart the process)."""
        return self.worker_task is None or not self.worker_task.done()

    async def stop(self, grace: float = 10.0) -> None:
        """Stops taking requests, lets streams and jobs in hand finish within `grace`."""
        self._stop_workers.set()
        if self._http:
            self._http.should_exit = True
        if self._grpc:
            await self._grpc.stop(grace)
        _, running = await asyncio.wait(self._tasks, timeout=grace) if self._tasks else ((), ())
        for task in running:
            task.cancel()  # a job still running goes back to the queue
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.worker:
            await self.worker.close()


@contextlib.asynccontextmanager
async def local_gateway(router: str, host: str, port: int, state: Path) -> AsyncIterator[Gateway]:
    """The HTTP gateway for `ttsfleet up --http-port`: jobs in SQLite under `state`, one worker."""
    backend = await SqliteBackend.open(state / "jobs.db")
    fleet = FleetClient(router)
    gateway = Gateway(Parts(backend, DirectoryStore(state / "results"), fleet))
    try:
        await gateway.start(host, port, None)
        yield gateway
    finally:
        await gateway.stop()
        await fleet.close()
        await backend.close()
