"""`ttsfleet worker`: runs jobs from the queue through the fleet until SIGTERM/SIGINT.

Run as many as the fleet can keep busy, on any hosts that reach the backend
(Redis) or share its file (SQLite on one host). A stopped worker finishes
nothing half-way: its running jobs go back to the queue at once.
"""

from __future__ import annotations

import argparse
import asyncio

from ttsfleet import logs
from ttsfleet.jobs import options
from ttsfleet.jobs.worker import Worker


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet worker", description=__doc__)
    options.add_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    parser.add_argument("--name", default="", help="worker name (default: host-pid-random)")
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    stop = options.stop_on_signals()
    async with options.opened(args) as parts:
        worker = Worker(
            parts.backend,
            parts.results,
            parts.fleet,
            name=args.name,
            concurrency=args.concurrency,
            heartbeat_seconds=parts.heartbeat_seconds,
        )
        running = asyncio.ensure_future(worker.run(stop))
        await stop.wait()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("worker", json_output=args.log_format == "json")
    return asyncio.run(run(args))
