"""`ttsfleet router`: runs the router until SIGTERM/SIGINT, then drains.

Discovery is Kubernetes (TTSPools and EndpointSlices in one namespace) unless
`--endpoint` lists pods, as the local fleet does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from ttsfleet import logs
from ttsfleet.router.discovery import Discovery, Waker
from ttsfleet.router.discovery.static import Entry, StaticDiscovery
from ttsfleet.router.picker import PICKERS
from ttsfleet.router.server import RouterServer
from ttsfleet.router.settings import RouterSettings
from ttsfleet.tls import TLSFiles, add_client_flags

log = logging.getLogger(__name__)

DEFAULTS = RouterSettings()
# RouterSettings fields that are plain numbers, each a flag (--stale-after, ...).
TUNING = {
    "stale_after": "seconds after which a pod's load report no longer counts",
    "saturation_wait": "seconds a request may wait for room when every queue is full (0: shed at once)",
    "batch_room_share": "share of a pod's queue at which batch requests count it full (shed first)",
    "batch_retry_after": "seconds a shed batch request is told to wait (retry-after metadata)",
    "pick_log_every": "log one pick in this many with its predicted finish (0: none)",
    "wake_hold_seconds": "seconds a request waits for a pool asleep at zero to wake (0: refuse)",
    "max_held_requests": "requests held per sleeping pool; more are RESOURCE_EXHAUSTED",
    "retries": "other pods to try when a call fails before any audio was sent",
    "eject_after_failures": "failures in a row that eject a pod",
    "ejection_seconds": "first ejection's length; each further one in a row adds as much",
    "max_ejection_seconds": "longest ejection",
    "load_min_interval_ms": "milliseconds: pods stream load reports at most this often",
    "load_max_interval_ms": "milliseconds: and at least this often, as a heartbeat",
    "fanout_min_chars": "texts this long are split at sentences over several pods",
    "fanout_parallel": "pieces of one request synthesized at once (0: never split)",
    "max_text_chars": "longest text accepted; longer is INVALID_ARGUMENT",
    "max_unary_bytes": "largest Synthesize answer joined from pieces; larger is refused up front",
}


def endpoint_entry(text: str) -> Entry:
    """Parses ADDRESS=POOL:VOICE[,VOICE...] (one --endpoint flag)."""
    address, _, rest = text.partition("=")
    pool, _, voices = rest.partition(":")
    if not (address and pool and voices):
        raise argparse.ArgumentTypeError(f"expected ADDRESS=POOL:VOICE[,VOICE...], got {text!r}")
    return address, pool, voices.split(",")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet router", description=__doc__)
    add = parser.add_argument
    add("--host", default="0.0.0.0", help="address to listen on")
    add("--port", type=int, default=50051, help="gRPC port (0 picks a free one)")
    add("--metrics-port", type=int, default=9090, help="Prometheus port; -1 turns it off")
    add(
        "--default-voice",
        default="",
        help="voice for requests that name none (default: the oldest TTSPool's default voice)",
    )
    where = parser.add_argument_group("discovery")
    where.add_argument(
        "--endpoint",
        action="append",
        type=endpoint_entry,
        default=[],
        metavar="ADDRESS=POOL:VOICES",
        help="a fixed pod, e.g. 127.0.0.1:50061=standard:joe,amy (repeat; turns Kubernetes off)",
    )
    where.add_argument("--namespace", help="namespace of the TTSPools (default: the router's own)")
    where.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster credentials)")
    picking = parser.add_argument_group("picking and failure handling")
    picking.add_argument("--picker", choices=sorted(PICKERS), default=DEFAULTS.picker)
    for name, help_ in TUNING.items():
        default = getattr(DEFAULTS, name)
        picking.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"{help_} (default: %(default)s)",
        )
    security = parser.add_argument_group("security")
    add_client_flags(security)
    security.add_argument("--tls-cert", type=Path, help="PEM certificate: serve TLS")
    security.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    security.add_argument(
        "--auth-token-file",
        type=Path,
        help="file of accepted bearer tokens, one a line: calls without one are UNAUTHENTICATED",
    )
    add("--drain-seconds", type=float, default=30.0, help="how long calls in flight may finish")
    add("--log-format", choices=("json", "text"), default="json")
    add("--log-level", default=os.environ.get("TTSFLEET_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> RouterSettings:
    """The flags as the router's settings."""
    return RouterSettings(
        picker=args.picker,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        auth_token_file=args.auth_token_file,
        pod_tls=TLSFiles.from_flags(args.pod_tls_cert, args.pod_tls_key, args.pod_tls_ca),
        pod_tls_server_name=args.pod_tls_server_name,
        **{name: getattr(args, name) for name in TUNING},
    )


def discovery(args: argparse.Namespace) -> Discovery:
    if args.endpoint:
        return StaticDiscovery(args.endpoint, args.default_voice)
    from ttsfleet.router.discovery import kubernetes

    return kubernetes.KubernetesDiscovery(
        kubernetes.api_client(args.kubeconfig),
        args.namespace or kubernetes.own_namespace(),
        args.default_voice,
    )


async def serve(args: argparse.Namespace) -> None:
    source = discovery(args)
    # Kubernetes discovery also wakes sleeping pools; fixed pods cannot be woken.
    waker = source if isinstance(source, Waker) else None
    router = RouterServer(source, settings(args), waker)
    await router.start(args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining", extra={"seconds": args.drain_seconds})
    await router.stop(args.drain_seconds)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("router", args.log_level, args.log_format == "json")
    asyncio.run(serve(args))
    return 0
