"""Workers and callback receivers for the job tests, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ttsfleet.gateway.server import Gateway
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.options import Parts
from ttsfleet.jobs.retry import RetryPolicy
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.jobs.worker import Worker
from ttsfleet.pieces import FanoutPolicy

# Small pieces, so a short test text still fans out.
FANOUT = FanoutPolicy(min_chars=40, piece_chars=40, max_chars=80, parallel=4)
QUICK_RETRY = RetryPolicy(piece_attempts=2, job_attempts=2, backoff_seconds=0.05)


def sentences(count: int, words_each: int = 5) -> str:
    """`count` sentences of `words_each` words: the timed engine streams one chunk per word."""
    return " ".join(" ".join(f"s{i}w{j}" for j in range(words_each)) + "." for i in range(count))


@contextlib.asynccontextmanager
async def worker_for(
    backend: JobBackend, results: Path, address: str, retry: RetryPolicy = QUICK_RETRY
) -> AsyncIterator[Worker]:
    fleet = FleetClient(address, FANOUT, retry, piece_timeout=10.0)
    worker = Worker(backend, DirectoryStore(results), fleet, heartbeat_seconds=0.1)
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
    gateway = Gateway(
        Parts(backend, DirectoryStore(workdir / "results"), fleet, heartbeat_seconds=0.2),
        **settings,
    )
    await gateway.start("127.0.0.1", 0, 0)
    try:
        yield gateway
    finally:
        await gateway.stop(2.0)
        await fleet.close()
        await backend.close()


@contextlib.contextmanager
def callback_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/done", received
    finally:
        server.shutdown()
        server.server_close()
