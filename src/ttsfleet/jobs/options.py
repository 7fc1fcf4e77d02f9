"""Command-line options shared by `ttsfleet worker` and `ttsfleet gateway`, and what they build."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ttsfleet import wire
from ttsfleet.jobs.backend import JobBackend, open_backend
from ttsfleet.jobs.callback import CallbackPolicy, parse_networks
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.jobs.retry import RetryPolicy
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.jobs.worker import Worker
from ttsfleet.pieces import FanoutPolicy

log = logging.getLogger(__name__)
FANOUT = FanoutPolicy()
RETRY = RetryPolicy()
CALLBACKS = CallbackPolicy()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--router", default="127.0.0.1:50051", help="the fleet's gRPC front door (host:port)")
    wire.add_router_access_arguments(parser)
    add(
        "--backend",
        default="sqlite:///var/lib/ttsfleet/jobs.db",
        help="job queue: sqlite:///PATH (embedded, default) or redis://HOST:PORT/DB",
    )
    add("--results", type=Path, default=Path("/var/lib/ttsfleet/results"), help="audio directory")
    add(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="a silent worker's job moves on after this",
    )
    add(
        "--parallel",
        type=int,
        default=FANOUT.parallel,
        help="pieces of one text synthesized at once",
    )
    add(
        "--piece-chars", type=int, default=FANOUT.piece_chars, help="target piece size (characters)"
    )
    add("--min-chars", type=int, default=FANOUT.min_chars, help="shorter texts are not split")
    add("--job-attempts", type=int, default=RETRY.job_attempts, help="attempts before dead-letter")
    add(
        "--piece-attempts",
        type=int,
        default=RETRY.piece_attempts,
        help="tries per piece per attempt",
    )
    add(
        "--max-away-seconds",
        type=float,
        default=RETRY.max_away_seconds,
        help="longest pause in claiming while the fleet is unavailable (no attempt is spent)",
    )
    add(
        "--retention-seconds",
        type=float,
        default=7 * 24 * 3600.0,
        help="finished jobs and their audio are removed this long after they end (0: never)",
    )
    add(
        "--give-up-seconds",
        type=float,
        default=300.0,
        help="a worker loop failing this long ends the process (non-zero) for a restart",
    )
    add(
        "--callback-allow",
        type=parse_networks,
        default=[],
        help="comma-separated CIDRs callbacks may reach although not public (e.g. 10.2.0.0/16)",
    )
    add(
        "--callback-secret-file",
        type=Path,
        help="HMAC key for the X-TTSFleet-Signature header of callbacks (a mounted Secret)",
    )
    add(
        "--callback-seconds",
        type=float,
        default=CALLBACKS.total_seconds,
        help="deadline for one callback attempt, everything included",
    )


@dataclass(frozen=True)
class Parts:
    backend: JobBackend
    results: DirectoryStore
    fleet: FleetClient
    # A third of the lease: two missed heartbeats still keep the job.
    heartbeat_seconds: float = 10.0
    callbacks: CallbackPolicy = CALLBACKS
    retention_seconds: float = 0.0
    give_up_seconds: float = 300.0
    metrics: JobMetrics = field(default_factory=JobMetrics)

    def worker(self, concurrency: int, name: str = "") -> Worker:
        """A worker over these parts, counting into their metrics."""
        return Worker(
            self.backend,
            self.results,
            self.fleet,
            name=name,
            concurrency=concurrency,
            heartbeat_seconds=self.heartbeat_seconds,
            callbacks=self.callbacks,
            metrics=self.metrics,
            give_up_seconds=self.give_up_seconds,
            retention_seconds=self.retention_seconds,
        )


@contextlib.asynccontextmanager
async def opened(args: argparse.Namespace) -> AsyncIterator[Parts]:
    """The backend, result store and fleet client the options describe, closed afterwards."""
    fanout = FanoutPolicy(
        min_chars=args.min_chars,
        piece_chars=args.piece_chars,
        max_chars=max(FANOUT.max_chars, args.piece_chars),
        parallel=args.parallel,
    )
    retry = RetryPolicy(
        job_attempts=args.job_attempts,
        piece_attempts=args.piece_attempts,
        max_away_seconds=args.max_away_seconds,
    )
    callbacks = CallbackPolicy(
        allow=args.callback_allow,
        total_seconds=args.callback_seconds,
        secret=args.callback_secret_file.read_bytes().strip() if args.callback_secret_file else b"",
        retry=retry,
    )
    if not callbacks.secret:
        log.warning("no --callback-secret-file: callbacks go out unsigned")
    backend = await open_backend(args.backend, args.lease_seconds)
    access = wire.RouterAccess.from_args(args)
    fleet = FleetClient(
        args.router, fanout, retry, token=access.token, credentials=access.credentials
    )
    try:
        heartbeat = max(args.lease_seconds / 3, 0.05)
        yield Parts(
            backend,
            DirectoryStore(args.results),
            fleet,
            heartbeat,
            callbacks,
            args.retention_seconds,
            args.give_up_seconds,
        )
    finally:
        await fleet.close()
        await backend.close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the commands drain when it is."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
