"""`ttsfleet inference`: runs one inference pod until SIGTERM/SIGINT, then drains."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import yaml

from ttsfleet import logs
from ttsfleet.inference.server import DEFAULT_STALL_SECONDS, InferenceServer, load_engines
from ttsfleet.manifests import ManifestError, PodConfig
from ttsfleet.tls import TLSFiles

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet inference", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="pod configuration YAML")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=50051, help="gRPC port (0 picks a free one)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port")
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    tls = parser.add_argument_group("mutual TLS (the router and the operator present certificates)")
    tls.add_argument("--tls-cert", type=Path, help="PEM certificate the pod presents")
    tls.add_argument("--tls-key", type=Path, help="its private key")
    tls.add_argument("--tls-client-ca", type=Path, help="CA that signs callers' certificates")
    parser.add_argument(
        "--health-port",
        type=int,
        help="also serve plaintext health checks (only) here, for probes when TLS is on",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=DEFAULT_STALL_SECONDS,
        help="fail the `liveness` health check when the engine has work and finishes no step "
        "for this long (a hung engine; Kubernetes then restarts the pod)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the bound ports here once serving")
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    parser.add_argument("--log-level", default=os.environ.get("TTSFLEET_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def read_config(path: Path) -> PodConfig:
    """The pod configuration, or a ManifestError that names the file and the field."""
    try:
        return PodConfig.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError) as error:
        raise ManifestError(f"{path}: {error}") from error


async def serve(args: argparse.Namespace, config: PodConfig) -> None:
    engines = await asyncio.to_thread(load_engines, config)
    server = InferenceServer(config, engines, args.stall_seconds)
    tls = TLSFiles.from_flags(args.tls_cert, args.tls_key, args.tls_client_ca)
    await server.start(args.host, args.port, args.metrics_port, tls, args.health_port)
    if args.ready_file:
        # Written whole, then renamed: a watcher never reads a half-written file.
        partial = args.ready_file.with_name(args.ready_file.name + ".tmp")
        partial.write_text(f"{server.port} {server.metrics_port}\n")
        partial.replace(args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await server.stop(args.drain_seconds)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure(
        f"inference/{os.environ.get('POD_NAME', 'local')}",
        args.log_level,
        args.log_format == "json",
    )
    try:
        config = read_config(args.config)
    except ManifestError as error:
        print(f"ttsfleet inference: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args, config))
    except ManifestError as error:  # e.g. a batch size the device cannot hold
        print(f"ttsfleet inference: {error}", file=sys.stderr)
        return 2
    return 0
