"""`ttsfleet gateway`: the HTTP API and the gRPC Jobs service in front of a fleet.

By default it also runs job workers in the same process, with the embedded
SQLite backend: one process is a complete long-form service. For a cluster,
point `--backend` at Redis and run `ttsfleet worker` processes beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ttsfleet import logs
from ttsfleet.gateway.auth import ApiKeys, RateLimit
from ttsfleet.gateway.openai_voices import VoiceMap
from ttsfleet.gateway.server import Gateway
from ttsfleet.jobs import options

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet gateway", description=__doc__)
    options.add_arguments(parser)
    add = parser.add_argument
    add("--host", default="0.0.0.0", help="address to listen on")
    add("--port", type=int, default=8080, help="HTTP port (0 picks a free one)")
    add("--grpc-port", type=int, default=50052, help="gRPC Jobs port; -1 turns it off")
    add("--workers", type=int, default=1, help="jobs run at once in this process (0: none)")
    add("--max-queued", type=int, default=10_000, help="backlog past which submissions get 429")
    add("--max-streams", type=int, default=64, help="speech streams at once past which 429")
    add("--drain-seconds", type=float, default=30.0)
    add(
        "--api-keys-file",
        type=Path,
        help="`TENANT KEY [interactive|batch]` per line (a mounted Secret, re-read on change); without it, no auth",
    )
    add("--rate", type=float, default=50.0, help="requests a second per caller (0: no limit)")
    add("--rate-burst", type=int, default=100, help="requests a caller may make at once")
    add(
        "--max-queued-per-tenant",
        type=int,
        default=1000,
        help="a caller's backlog past which its submissions get 429 (0: no limit)",
    )
    add(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="larger request bodies get 413 (gRPC: RESOURCE_EXHAUSTED)",
    )
    add(
        "--openai-voice",
        action="append",
        default=[],
        metavar="NAME=VOICE",
        help="speak OpenAI's voice NAME (alloy, nova, ...) with fleet voice VOICE (repeat); "
        "unmapped OpenAI names get the fleet's default voice",
    )
    add("--log-format", choices=("json", "text"), default="json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    stop = options.stop_on_signals()
    async with options.opened(args) as parts:
        if args.api_keys_file is None:
            log.warning("no --api-keys-file: the gateway is open to every caller")
        gateway = Gateway(
            parts,
            workers=args.workers,
            max_queued=args.max_queued,
            max_streams=args.max_streams,
            api_keys=ApiKeys(args.api_keys_file) if args.api_keys_file else None,
            rate=RateLimit(args.rate, args.rate_burst),
            max_queued_per_tenant=args.max_queued_per_tenant,
            max_body_bytes=args.max_body_bytes,
            openai_voices=VoiceMap.parse(args.openai_voice),
        )
        await gateway.start(args.host, args.port, None if args.grpc_port < 0 else args.grpc_port)
        print(
            f"ttsfleet gateway: HTTP on {args.host}:{gateway.port}"
            + (f", gRPC Jobs on {args.host}:{gateway.grpc_port}" if gateway.grpc_port else ""),
            file=sys.stderr,
            flush=True,
        )
        stopped = asyncio.ensure_future(stop.wait())
        watched = [stopped, *filter(None, [gateway.worker_task])]
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await gateway.stop(args.drain_seconds)
    if not gateway.alive():
        log.error("in-process job workers could not recover; exiting")
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("gateway", json_output=args.log_format == "json")
    return asyncio.run(run(args))
