"""Reading a pool's load from its ready pods' LoadReporter streams.

The operator dials each ready pod once per autoscaling tick and takes the
first report of the stream: the same numbers the router sees. How a pod is
reached is a resolver, injectable because the address is a deployment
choice (pod IP by default; a port-forward, a sidecar or, in tests, a
loopback server standing in for a fake pod are others).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from ttsfleet.manifests import POOL_LABEL
from ttsfleet.operator.autoscale_policy import LoadSample
from ttsfleet.operator.objects import GRPC_PORT
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc
from ttsfleet.tls import ClientTLS
from ttsfleet.tls import channel as channel_to

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "{ip}:" + str(GRPC_PORT)


@dataclass(frozen=True)
class PodInfo:
    """What the operator keeps of an inference pod (kopf indexes it by pool)."""

    namespace: str
    name: str
    pool: str
    ip: str
    ready: bool

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> PodInfo:
        meta, status = body["metadata"], body.get("status") or {}
        conditions = status.get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            pool=(meta.get("labels") or {}).get(POOL_LABEL, ""),
            ip=status.get("podIP") or "",
            ready=ready and not meta.get("deletionTimestamp"),
        )


AddressResolver = Callable[[PodInfo], str | None]


def template_resolver(template: str) -> AddressResolver | None:
    """A resolver from a template with {ip}, {name}, {namespace}, {pool}; "" disables reads."""
    if not template:
        return None

    def resolve(pod: PodInfo) -> str | None:
        if "{ip}" in template and not pod.ip:
            return None
        return template.format(ip=pod.ip, name=pod.name, namespace=pod.namespace, pool=pod.pool)

    return resolve


async def read_report(
    address: str, seconds: float, tls: ClientTLS | None = None
) -> ttsfleet_v1_pb2.LoadReport | None:
    """The first report of the pod's WatchLoad stream, or None if none came within ``seconds``."""
    async with channel_to(address, tls, []) as channel:
        call = ttsfleet_v1_pb2_grpc.LoadReporterStub(channel).WatchLoad(
            ttsfleet_v1_pb2.WatchLoadRequest(min_interval_ms=0, max_interval_ms=1000),
            timeout=seconds,
        )
        try:
            report = await call.read()
        except grpc.aio.AioRpcError as error:
            logger.debug("no load report from %s: %s", address, error.code().name)
            return None
        finally:
            call.cancel()
    return None if report is grpc.aio.EOF else report


async def read_pool_load(
    pods: Iterable[PodInfo], resolve: AddressResolver, seconds: float, tls: ClientTLS | None = None
) -> LoadSample:
    """Dial every ready pod at once; sum what arrives within ``seconds``."""
    ready = [pod for pod in pods if pod.ready]
    addresses = [address for address in map(resolve, ready) if address]
    reports = await asyncio.gather(*(read_report(a, seconds, tls) for a in addresses))
    answered = [r for r in reports if r is not None]
    return LoadSample(
        ready_pods=len(ready),
        reporting_pods=len(answered),
        queue_depth=sum(r.queue_depth for r in answered),
        in_flight=sum(r.in_flight for r in answered),
        queued_audio_seconds=sum(r.queued_audio_seconds for r in answered),
    )
