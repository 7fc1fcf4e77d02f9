"""`ttsfleet mcp`: the governed, read-only MCP server for operators (streamable HTTP or stdio).

Flags default from environment variables (TTSFLEET_MCP_*), which is how the
Helm chart configures the Deployment. Over stdio (a person's own machine)
the caller is whoever TTSFLEET_MCP_TOKEN names in the access file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

import uvicorn

from ttsfleet import logs
from ttsfleet.jobs.backend import open_backend
from ttsfleet.mcp.access import AccessError, AccessFile
from ttsfleet.mcp.audit import Audit
from ttsfleet.mcp.governance import Governor, audit_refusals
from ttsfleet.mcp.kube import Kube, api_client
from ttsfleet.mcp.server import FleetTools, Settings, build
from ttsfleet.mcp.sources import JobRecords, RequestSource, RouterLog

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TTSFLEET_MCP_{name}", default)


def _own_namespace() -> str:
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    return "default"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ttsfleet mcp", description="Serve read-only fleet tools over MCP, governed."
    )
    add = parser.add_argument
    add("--transport", choices=("http", "stdio"), default=_env("TRANSPORT", "http"))
    add("--host", default=_env("HOST", "127.0.0.1"), help="HTTP listen address")
    add("--port", type=int, default=int(_env("PORT", "8000")), help="HTTP port")
    add("--path", default="/mcp", help="the streamable HTTP endpoint's path")
    add(
        "--access",
        type=Path,
        default=Path(_env("ACCESS", "/etc/ttsfleet/mcp/access.yaml")),
        help="identities, their tokens or OIDC subjects, and their tools (re-read on change)",
    )
    add("--kubeconfig", default=os.environ.get("KUBECONFIG") or None, help="default: in-cluster")
    add("--namespace", default=_env("NAMESPACE", ""), help="the pools' namespace (default: own)")
    add(
        "--load-address",
        default=_env("LOAD_ADDRESS", "{ip}:50051"),
        help="a pod's LoadReporter: a template with {ip}, {name}, {namespace}, {pool}; "
        "empty: no live load reads",
    )
    add("--load-timeout", type=float, default=2.0, help="seconds to wait for a pod's report")
    add("--jobs-backend", default=_env("JOBS_BACKEND", ""), help="sqlite:///PATH or redis://...")
    add(
        "--router-log",
        type=Path,
        action="append",
        default=[],
        help="a file of the router's JSON log lines (repeatable)",
    )
    add("--audit-log", default=_env("AUDIT_LOG", "-"), help="audit records' file; - is stderr")
    add(
        "--enable-scale",
        action="store_true",
        default=_env("ENABLE_SCALE", "") == "true",
        help="serve propose_scale/approve_scale (a second identity approves each scale)",
    )
    add("--approval-ttl", type=float, default=900.0, help="seconds a scale proposal stays open")
    add("--log-level", default=_env("LOG_LEVEL", "INFO"))
    add("--log-format", choices=("json", "text"), default=_env("LOG_FORMAT", "json"))
    return parser.parse_args(argv)


@contextlib.asynccontextmanager
async def _audit_stream(target: str) -> AsyncIterator[TextIO]:
    """stderr, or a file kept open for appending (never stdout: stdio's protocol is there)."""
    if target == "-":
        yield sys.stderr
        return
    with open(target, "a", encoding="utf-8") as stream:  # noqa: ASYNC230 (opened once, at start)
        yield stream


async def run(args: argparse.Namespace) -> None:
    access = AccessFile(args.access)
    settings = Settings(
        load_address=args.load_address,
        load_seconds=args.load_timeout,
        approval_ttl_seconds=args.approval_ttl,
    )
    async with contextlib.AsyncExitStack() as stack:
        audit = Audit(await stack.enter_async_context(_audit_stream(args.audit_log)))
        api = await stack.enter_async_context(await api_client(args.kubeconfig))
        kube = Kube(api, args.namespace or _own_namespace())
        router_log = RouterLog(args.router_log) if args.router_log else None
        sources: list[RequestSource] = []
        if args.jobs_backend:
            backend = await open_backend(args.jobs_backend)
            stack.push_async_callback(backend.close)
            sources.append(JobRecords(backend))
        if router_log:
            sources.append(router_log)
        governor = Governor(access, audit, os.environ.get("TTSFLEET_MCP_TOKEN", ""))
        server = build(governor, FleetTools(kube, settings, sources, router_log), args.enable_scale)
        if args.transport == "stdio":
            await server.run_stdio_async()
            return
        app = audit_refusals(
            server.streamable_http_app(streamable_http_path=args.path, host=args.host), audit
        )
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level.lower(), access_log=False
        )
        await uvicorn.Server(config).serve()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logs.configure("mcp", args.log_level, args.log_format == "json")
    try:
        asyncio.run(run(args))
    except AccessError as error:
        print(f"ttsfleet mcp: {error}", file=sys.stderr)
        return 2
    return 0
