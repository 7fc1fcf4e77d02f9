"""Tells a caller its job has ended: the job's public status POSTed as JSON to its callback URL.

A callback is a courtesy, not part of the job: ended jobs go into a bounded
outbox that a few sender tasks drain, so a slow or hostile receiver never
holds a worker's job slot; a full outbox drops the newest callback (logged),
and a failure is logged, never turned into a failed job (the status endpoint
stays the source of truth).

Callers choose the URL, so the sender guards the network it runs in: the
host is resolved first and the call refused when any address is private,
loopback, link-local or otherwise not public (unless an allow-list names
it), and the connection goes to the address that was checked, so a second
DNS answer cannot swap it. Each call has one deadline for everything
(connect, TLS, headers, a body dripped byte by byte). Bodies are signed:
`X-TTSFleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.jobs.model import Job
from ttsfleet.jobs.retry import RetryPolicy

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-TTSFleet-Signature"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The callback's host is not one this sender may call."""


@dataclass(frozen=True)
class CallbackPolicy:
    """Where callbacks may go, how long one may take, how often it is tried, how it is signed."""

    # Networks allowed although not public (e.g. a cluster's own receivers).
    allow: Sequence[Network] = ()
    total_seconds: float = 10.0
    attempts: int = 3
    secret: bytes = b""
    outbox_size: int = 1000
    senders: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def parse_networks(text: str) -> list[Network]:
    """Comma-separated CIDRs (or bare addresses) as networks, e.g. "10.1.0.0/16,127.0.0.1"."""
    return [ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip()]


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value: a receiver recomputes it to check origin and freshness."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _allowed(address: Address, allow: Sequence[Network]) -> bool:
    if any(address in network for network in allow):
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_global and not address.is_multicast and not mapped)


async def resolve(host: str, port: int, allow: Sequence[Network]) -> Address:
    """The address to dial for `host`; raises Refused when any of its addresses is not allowed.

    Every address is checked (not just the first), so a name cannot mix a
    public address with an internal one and hope for the latter.
    """
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as error:
            raise Refused(f"{host} does not resolve: {error}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    denied = [str(a) for a in addresses if not _allowed(a, allow)]
    if denied or not addresses:
        raise Refused(
            f"{host} resolves to {', '.join(denied) or 'nothing'}: not a public address "
            "(private, loopback, link-local or reserved) and not in --callback-allow"
        )
    return addresses[0]


async def post(client: httpx.AsyncClient, url: str, body: bytes, policy: CallbackPolicy) -> int:
    """One POST of `body` to `url`, pinned to the checked address, within the total deadline."""
    try:  # checked at submission; a job stored before that may still hold anything
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise Refused(f"the URL cannot be dialled: {error}") from None
    host = parts.hostname or ""
    headers = {"Content-Type": "application/json", "Host": parts.netloc}
    if policy.secret:
        headers[SIGNATURE_HEADER] = signature(policy.secret, body, int(time.time()))
    async with asyncio.timeout(policy.total_seconds):
        address = await resolve(host, port, policy.allow)
        literal = f"[{address}]" if address.version == 6 else str(address)
        pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
        response = await client.post(
            pinned, content=body, headers=headers, extensions={"sni_hostname": host}
        )
        return response.status_code


class Outbox:
    """Ended jobs waiting for their callback, drained by `policy.senders` tasks."""

    def __init__(self, policy: CallbackPolicy, metrics: JobMetrics) -> None:
        self.policy = policy
        self._count = metrics.callbacks
        self._queue: asyncio.Queue[Job] = asyncio.Queue(policy.outbox_size)
        # Redirects are not followed: each hop would need the same checks. Connections are not
        # kept: the pool is keyed by the pinned address, and a connection made with one host's
        # TLS name must not carry another host's callback that resolves to the same address.
        self._client = httpx.AsyncClient(
            timeout=policy.total_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def put(self, job: Job) -> None:
        """Queues the job's callback; drops it (logged) when the outbox is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._count.labels("dropped").inc()
            log.warning("callback outbox full; dropping callback", extra={"job": job.id})

    async def run(self) -> None:
        """Sends callbacks until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.policy.senders):
                group.create_task(self._sender())

    async def drain(self, seconds: float) -> None:
        """Waits (bounded) for queued callbacks to be sent, e.g. before the process exits."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), seconds)

    async def close(self) -> None:
        await self._client.aclose()

    async def _sender(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                self._count.labels(await self.notify(job)).inc()
            finally:
                self._queue.task_done()

    async def notify(self, job: Job) -> str:
        """POSTs the job's status, retrying with backoff; the outcome, as the metric labels it."""
        body = json.dumps(job.public()).encode()
        for attempt in range(1, self.policy.attempts + 1):
            try:
                status = await post(self._client, job.spec.callback_url, body, self.policy)
                if 200 <= status < 300:
                    return "delivered"
                problem = f"HTTP {status}"
            except Refused as error:
                log.warning("callback refused", extra={"job": job.id, "error": str(error)})
                return "refused"
            except TimeoutError:
                problem = f"no complete answer within {self.policy.total_seconds} s"
            except Exception as error:  # a bad URL or receiver must not end the sender
                problem = f"{type(error).__name__}: {error}"
            log.warning(
                "callback failed",
                extra={"job": job.id, "attempt": attempt, "error": problem},
            )
            if attempt < self.policy.attempts:
                await asyncio.sleep(self.policy.retry.delay(attempt))
        return "failed"
