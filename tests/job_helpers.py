"""Workers and callback receivers for the job tests, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from ttsfleet.gateway.server import Gateway
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.callback import CallbackPolicy, parse_networks
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.options import Parts
from ttsfleet.jobs.retry import RetryPolicy
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.jobs.worker import Worker
from ttsfleet.pieces import FanoutPolicy

# Small pieces, so a short test text still fans out.
FANOUT = FanoutPolicy(min_chars=40, piece_chars=40, max_chars=80, parallel=4)
QUICK_RETRY = RetryPolicy(
    piece_attempts=2, job_attempts=2, backoff_seconds=0.05, away_seconds=0.05, max_away_seconds=0.5
)
# Test receivers listen on loopback, which callbacks may reach only when allowed.
SECRET = b"test-callback-secret"
LOOPBACK_CALLBACKS = CallbackPolicy(
    allow=parse_networks("127.0.0.0/8"), total_seconds=5.0, secret=SECRET, retry=QUICK_RETRY
)


async def finished(http: httpx.AsyncClient, job_id: str, seconds: float = 10.0) -> dict[str, Any]:
    """Polls the status (bounded) until the job has ended."""
    for _ in range(int(seconds / 0.02)):
        status: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        if status["state"] not in ("queued", "running"):
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} still {status['state']}")


def sentences(count: int, words_each: int = 5) -> str:
    """`count` sentences of `words_each` words: the timed engine streams one chunk per word."""
    return " ".join(" ".join(f"s{i}w{j}" for j in range(words_each)) + "." for i in range(count))


@contextlib.asynccontextmanager
async def worker_for(
    backend: JobBackend,
    results: Path,
    address: str,
    retry: RetryPolicy = QUICK_RETRY,
    callbacks: CallbackPolicy = LOOPBACK_CALLBACKS,
    piece_timeout: float = 10.0,
    **settings: Any,
) -> AsyncIterator[Worker]:
    fleet = FleetClient(address, FANOUT, retry, piece_timeout=piece_timeout)
    worker = Worker(
        backend,
        DirectoryStore(results),
        fleet,
        heartbeat_seconds=0.1,
        callbacks=callbacks,
        **settings,
    )
    try:
        yield worker
    finally:
        await worker.close()
        await fleet.close()


@contextlib.asynccontextmanager
async def running_gateway(
    workdir: Path, router_port: int, **settings: Any
) -> AsyncIterator[Gateway]:
    backend = await SqliteBackend.open(workdir / "jobs.db", lease_seconds=2.0)
    fleet = FleetClient(f"127.0.0.1:{router_port}", FANOUT, QUICK_RETRY, piece_timeout=10.0)
    parts = Parts(
        backend,
        DirectoryStore(workdir / "results"),
        fleet,
        heartbeat_seconds=0.2,
        callbacks=LOOPBACK_CALLBACKS,
    )
    gateway = Gateway(parts, **settings)
    await gateway.start("127.0.0.1", 0, 0)
    try:
        yield gateway
    finally:
        await gateway.stop(2.0)
        await fleet.close()
        await backend.close()


async def send_callbacks(worker: Worker, seconds: float = 10.0) -> None:
    """Runs the worker's callback outbox until what it holds is sent (bounded)."""
    sender = asyncio.ensure_future(worker.outbox.run())
    try:
        await worker.outbox.drain(seconds)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


@dataclass
class Receiver:
    """What an HTTP receiver on 127.0.0.1 was POSTed: JSON bodies, raw bodies, headers."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def callback_receiver() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records what is POSTed to it and answers 204."""
    received = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            received.raw.append(body)
            received.bodies.append(json.loads(body))
            received.headers.append(dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_port}/done"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
