"""`ttsfleet worker`: runs jobs from the queue through the fleet until SIGTERM/SIGINT.

Run as many as the fleet can keep busy, on any hosts that reach the backend
(Redis) or share its file (SQLite on one host). A stopped worker finishes
nothing half-way: its running jobs go back to the queue at once, without
spending an attempt. A worker loop that cannot recover (the backend gone
for `--give-up-seconds`) makes the process exit with status 1, so its
supervisor restarts it: the process living is its liveness.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from prometheus_client import start_http_server

from ttsfleet import logs
from ttsfleet.jobs import options
from ttsfleet.jobs.worker import LoopFailed

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet worker", description=__doc__)
    options.add_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    parser.add_argument("--name", default="", help="worker name (default: host-pid-random)")
    parser.add_argument(
        "--metrics-port", type=int, default=9091, help="Prometheus /metrics port (-1: off)"
    )
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    stop = options.stop_on_signals()
    async with options.opened(args) as parts:
        if args.metrics_port >= 0:
            start_http_server(args.metrics_port, registry=parts.metrics.registry)
        worker = parts.worker(args.concurrency, args.name)
        running = asyncio.ensure_future(worker.run(stop))
        await asyncio.wait(
            (running, asyncio.ensure_future(stop.wait())), return_when="FIRST_COMPLETED"
        )
        running.cancel()
        outcome = (await asyncio.gather(running, return_exceptions=True))[0]
        await worker.close()
    if isinstance(outcome, LoopFailed):
        log.error("worker loop could not recover; exiting", extra={"error": str(outcome)})
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("worker", json_output=args.log_format == "json")
    return asyncio.run(run(args))
