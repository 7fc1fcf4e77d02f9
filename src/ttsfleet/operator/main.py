"""`ttsfleet operator`: run the operator (kopf) in this process.

Flags default from environment variables (TTSFLEET_*), which is how the
Helm chart configures the Deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from pathlib import Path

import kopf
from kubernetes.aio import client, config

from ttsfleet import logs
from ttsfleet.operator.apply import Api
from ttsfleet.operator.autoscaler import Autoscaler
from ttsfleet.operator.canary import DEFAULT_GATE_IMAGE
from ttsfleet.operator.handlers import (
    OWNED_SELECTOR,
    WATCHED_BY_LABEL,
    register,
    register_peering,
)
from ttsfleet.operator.load import DEFAULT_ADDRESS, template_resolver
from ttsfleet.operator.objects import DEFAULT_FETCHER_IMAGE, DEFAULT_IMAGE, VoiceFetching
from ttsfleet.operator.reconciler import Reconciler
from ttsfleet.operator.state import PoolStates
from ttsfleet.operator.voices import VoiceChecker
from ttsfleet.tls import ClientTLS, TLSFiles

logger = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TTSFLEET_{name}", default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ttsfleet operator",
        description="Reconcile TTSVoices and TTSPools into inference fleets.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    parser.add_argument(
        "--image",
        default=_env("INFERENCE_IMAGE", DEFAULT_IMAGE),
        help="inference image for pools that set none (env TTSFLEET_INFERENCE_IMAGE)",
    )
    parser.add_argument(
        "--fetcher-image",
        default=_env("FETCHER_IMAGE", DEFAULT_FETCHER_IMAGE),
        help="image whose `ttsfleet fetch-voice` fetches remote voices in init containers "
        "(the control-plane image; env TTSFLEET_FETCHER_IMAGE)",
    )
    parser.add_argument(
        "--gate-image",
        default=_env("GATE_IMAGE", DEFAULT_GATE_IMAGE),
        help="image whose `ttsfleet gate` judges canaries (one with `ttsfleet[gate]`) unless "
        "a pool's spec.rollout.gate.image names another (env TTSFLEET_GATE_IMAGE)",
    )
    parser.add_argument(
        "--voice-cache-dir",
        default=_env("VOICE_CACHE_DIR", ""),
        help="a directory on each node (hostPath, writable by uid 65532) caching fetched voices "
        "by digest; empty: a cache per pod (env TTSFLEET_VOICE_CACHE_DIR)",
    )
    parser.add_argument(
        "--oci-image-volumes",
        action="store_true",
        default=_env("OCI_IMAGE_VOLUMES", "") == "true",
        help="mount OCI voice sources as image volumes (needs the ImageVolume feature gate) "
        "instead of fetching them (env TTSFLEET_OCI_IMAGE_VOLUMES=true)",
    )
    parser.add_argument(
        "--load-address",
        default=_env("LOAD_ADDRESS", DEFAULT_ADDRESS),
        help="where a pod's LoadReporter answers: a template with {ip}, {name}, {namespace}, "
        "{pool}; empty disables load reads, leaving the autoscaler only its min/max bounds "
        "(env TTSFLEET_LOAD_ADDRESS)",
    )
    parser.add_argument(
        "--pod-tls-secret",
        default=_env("POD_TLS_SECRET", ""),
        help="a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) in each pool's namespace: "
        "pods then require client certificates (env TTSFLEET_POD_TLS_SECRET)",
    )
    parser.add_argument(
        "--pod-tls-dir",
        type=Path,
        default=Path(_env("POD_TLS_DIR", "")) if _env("POD_TLS_DIR", "") else None,
        help="where the operator's own copy of that Secret is mounted, for its load reads "
        "(env TTSFLEET_POD_TLS_DIR)",
    )
    parser.add_argument(
        "--load-timeout",
        type=float,
        default=float(_env("LOAD_TIMEOUT", "2")),
        help="seconds to wait for one pod's load report",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=float(_env("AUTOSCALE_INTERVAL", "10")),
        help="seconds between load reads and autoscaling decisions per pool",
    )
    parser.add_argument(
        "--peering",
        default=_env("PEERING", "ttsfleet"),
        help="kopf peering object shared by the operator's replicas",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=int(_env("PRIORITY", "0")) or random.randint(1, 2**31),
        help="peering priority: the live replica with the highest one works, others stand by "
        "(default: random, so replicas never tie)",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(_env("PEERING_LIFETIME", "60")),
        help="seconds after its last keep-alive that a silent replica is presumed dead",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="run without peering (a single replica)"
    )
    parser.add_argument(
        "--liveness",
        default=_env("LIVENESS", ""),
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--log-format", choices=("json", "text"), default=_env("LOG_FORMAT", "json")
    )
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.peering.lifetime = args.peering_lifetime
    result.peering.stealth = True
    result.persistence.finalizer = "ttsfleet.dev/operator"
    # The voice check's handler state goes in the voice's status, not annotations.
    result.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    result.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field="status.kopf.lastHandledConfiguration"
    )
    for group, version, plural in WATCHED_BY_LABEL:
        result.watching.label_selectors[group, version, plural] = OWNED_SELECTOR
    return result


async def new_api_client() -> client.ApiClient:
    """An asyncio API client for the same identity kopf logs in with."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


async def run(args: argparse.Namespace) -> None:
    async with await new_api_client() as api_client:
        api = Api(api_client)
        states = PoolStates()
        fetching = VoiceFetching(args.fetcher_image, args.voice_cache_dir, args.oci_image_volumes)
        reconciler = Reconciler(
            api, states, args.image, args.pod_tls_secret, fetching, args.gate_image
        )
        tls_dir = args.pod_tls_dir
        tls = (
            ClientTLS(TLSFiles(tls_dir / "tls.crt", tls_dir / "tls.key", tls_dir / "ca.crt"))
            if tls_dir
            else None
        )
        autoscaler = Autoscaler(
            api,
            states,
            reconciler,
            template_resolver(args.load_address),
            args.load_timeout,
            tls=tls,
        )
        registry = kopf.OperatorRegistry()
        register(
            registry,
            states=states,
            reconciler=reconciler,
            autoscaler=autoscaler,
            voice_checker=VoiceChecker(api),
            interval=args.interval,
        )
        if not args.standalone:
            register_peering(registry, api, args.peering, args.namespace)
        logger.info(
            "operator starting: %s, peering %s, priority %d",
            ", ".join(args.namespace) or "all namespaces",
            "off" if args.standalone else args.peering,
            args.priority,
        )
        await kopf.operator(
            registry=registry,
            settings=settings(args),
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            priority=args.priority,
            liveness_endpoint=args.liveness or None,
        )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("operator", args.log_level, json_output=args.log_format == "json")
    # kopf logs every handler call at INFO; the operator logs what matters itself.
    kopf_objects = logging.getLogger("kopf.objects")
    kopf_objects.setLevel(max(kopf_objects.getEffectiveLevel(), logging.WARNING))
    asyncio.run(run(args))
    return 0
