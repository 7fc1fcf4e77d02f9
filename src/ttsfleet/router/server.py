"""Assembles the router: discovery → datastore → load watches → picker → forwarder, on one gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from ttsfleet import tracing, wire
from ttsfleet.router import picker as picking
from ttsfleet.router.catalog import Catalog
from ttsfleet.router.discovery import Discovery, Topology, Waker
from ttsfleet.router.endpoints import Datastore
from ttsfleet.router.forwarder import Forwarder
from ttsfleet.router.load_watch import LoadWatcher
from ttsfleet.router.metrics import RouterMetrics
from ttsfleet.router.security import BearerTokenAuth, server_credentials, token_file
from ttsfleet.router.settings import RouterSettings
from ttsfleet.router.wake import WakeUps

log = logging.getLogger(__name__)

TLS_CHECK_SECONDS = 5.0


class RouterServer:
    """The running router. `start` binds and begins discovery; `stop` drains."""

    def __init__(
        self,
        discovery: Discovery,
        settings: RouterSettings | None = None,
        waker: Waker | None = None,
    ) -> None:
        """`waker` wakes pools asleep at zero pods; without one, their requests are refused."""
        self.settings = settings or RouterSettings()
        self.metrics = RouterMetrics()
        self.datastore = Datastore(self.settings)
        picker = picking.PICKERS[self.settings.picker]()
        self.forwarder = Forwarder(
            self.datastore,
            picker,
            self.metrics,
            self.settings,
            WakeUps(self.datastore, self.metrics, self.settings, waker),
        )
        self._catalog = Catalog(self.datastore, picker, self.settings.stale_after)
        self._load = LoadWatcher(
            self.datastore,
            self.metrics,
            self.settings.load_min_interval_ms,
            self.settings.load_max_interval_ms,
        )
        self._discovery = discovery
        self._discovering: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._health = health.aio.HealthServicer()
        tokens = self.settings.auth_token_file
        auth = [BearerTokenAuth(token_file(tokens).current)] if tokens else []
        self._server = grpc.aio.server(interceptors=[*auth, *tracing.server_interceptors()])
        self._metrics_http: Any = None
        self.port = 0
        self.metrics_port = 0

    def _publish(self, topology: Topology) -> None:
        for gone in self.datastore.apply(topology):
            self.metrics.forget(gone.pool, gone.address)
        self.metrics.pool_ready_pods.clear()
        self.metrics.pool_may_sleep.clear()
        for name, pool in topology.pools.items():
            self.metrics.pool_ready_pods.labels(name).set(len(pool.addresses))
            self.metrics.pool_may_sleep.labels(name).set(int(pool.scales_from_zero))
        self._load.sync()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serves on host:port (0: any free port) and returns the bound port."""
        for service in wire.SYNTHESIS_SERVICES:
            methods = {**self.forwarder.method_handlers(service), **self._catalog.method_handlers()}
            self._server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service, methods)]
            )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*wire.SYNTHESIS_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = self._bind(f"{host}:{port}")
        if self.settings.metrics_port is not None:
            self._metrics_http, _ = start_http_server(
                self.settings.metrics_port, addr=host, registry=self.metrics.registry
            )
            self.metrics_port = self._metrics_http.server_port
        loop = asyncio.get_running_loop()
        self._discovering = loop.create_task(self._discovery.run(self._publish), name="discovery")
        if self.settings.pod_tls:
            self._renewing = loop.create_task(self._renew_tls(), name="pod-tls")
        await self._server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("router listening", extra={"port": self.port, "metrics_port": self.metrics_port})
        return self.port

    async def _renew_tls(self) -> None:
        """Looks at the pod TLS files every few seconds; renewed ones get new channels."""
        while True:
            await asyncio.sleep(TLS_CHECK_SECONDS)
            if self.datastore.renew_tls():
                log.info("pod TLS files changed; new channels to every pod")
                self._load.restart()

    def _bind(self, address: str) -> int:
        cert, key = self.settings.tls_cert, self.settings.tls_key
        if cert and key:
            return int(self._server.add_secure_port(address, server_credentials(cert, key)))
        return int(self._server.add_insecure_port(address))

    async def _set_health(self, status: int) -> None:
        for name in ("", *wire.SYNTHESIS_SERVICES):
            await self._health.set(name, status)

    async def stop(self, grace: float = 30.0) -> None:
        """Drains: NOT_SERVING, no new calls, lets calls in flight finish within `grace`."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(grace)
        for task in (self._discovering, self._renewing):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._load.stop()
        await self.datastore.close()
        if self._metrics_http:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
