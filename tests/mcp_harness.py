"""Helpers for the MCP server's tests (this module has no tests): its process, its client, its RBAC.

The fixtures that build on them are in tests/mcp/conftest.py. The server
runs as a child process, logged in as the chart's ServiceAccount; callers
use the SDK's own client over streamable HTTP on 127.0.0.1. Pods are kwok
fakes whose IPs are never dialled: the server is pointed (--load-address)
at one real inference server on a loopback port for every pod's load.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import yaml
from cluster import binaries
from cluster.control_plane import ControlPlane, free_port
from cluster.polling import wait_until
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from operator_harness import Cluster

from ttsfleet.mcp.access import token_digest

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "ttsfleet"
RELEASE = "t"
SERVICE_ACCOUNT = f"{RELEASE}-ttsfleet-mcp"
READ_TOOLS = ["fleet_overview", "pool_events", "pool_load", "request_path"]
# Callers by static token; erin signs in with an OIDC JWT from the test's issuer.
TOKENS = {name: f"{name}-{uuid.uuid4().hex}" for name in ("alice", "bob", "carol", "dave")}
GRANTS = {
    "alice": READ_TOOLS,
    "bob": ["fleet_overview"],
    "carol": ["fleet_overview", "propose_scale", "approve_scale"],
    "dave": ["*"],
    "erin": ["fleet_overview"],
}
ISSUER, AUDIENCE = "https://idp.test", "ttsfleet-mcp"


class Issuer:
    """An OIDC issuer's signing key: it signs JWTs; its public half is the JWKS the server trusts."""

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, subject: str, audience: str = AUDIENCE, lifetime: float = 300) -> str:
        claims = {"iss": ISSUER, "aud": audience, "sub": subject, "exp": time.time() + lifetime}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


ISSUER_KEY = Issuer()


def access_file(path: Path, grants: dict[str, list[str]]) -> Path:
    """The access file for ``grants``: static tokens by digest, erin by OIDC subject."""
    identities = [
        {"name": name, "tokens": [token_digest(TOKENS[name])], "tools": tools}
        if name in TOKENS
        else {"name": name, "subjects": [f"{name}@example.com"], "tools": tools}
        for name, tools in grants.items()
    ]
    (path.parent / "jwks.json").write_text(json.dumps(ISSUER_KEY.jwks()), encoding="utf-8")
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwksFile": "jwks.json", "claim": "sub"}
    path.write_text(yaml.safe_dump({"identities": identities, "oidc": oidc}), encoding="utf-8")
    return path


def render_chart(namespace: str, *sets: str, only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The chart's manifests (helm template), with mcp enabled for ``namespace``."""
    args = [
        str(binaries.locate()["helm"]),
        "template",
        RELEASE,
        str(CHART),
        f"--namespace={namespace}",
        "--kube-version=1.34.0",
        "--set=mcp.enabled=true",
        "--set=mcp.access.secretName=mcp-access",
        *(f"--set={value}" for value in sets),
        *(f"--show-only=templates/mcp/{name}" for name in only),
    ]
    home = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run(args, capture_output=True, text=True, env=home, timeout=120, check=True)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def install_mcp_rbac(control_plane: ControlPlane, namespace: str, *sets: str) -> Path:
    """The chart's ServiceAccount, Role and RoleBinding in ``namespace``; its kubeconfig."""
    docs = render_chart(namespace, *sets, only=("serviceaccount.yaml", "rbac.yaml"))
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)


class McpProcess:
    """One `ttsfleet mcp` child process serving streamable HTTP on 127.0.0.1."""

    def __init__(self, workdir: Path, args: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.audit_path = workdir / "audit.jsonl"
        self.log_path = workdir / "mcp.log"
        argv = [
            sys.executable, "-m", "ttsfleet.cli", "mcp",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--audit-log", str(self.audit_path), "--log-format", "text",
            *args,
        ]  # fmt: skip
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(self._healthy, what="the MCP server's /healthz", timeout=60)

    def _healthy(self) -> bool:
        if self._proc.poll() is not None:
            raise AssertionError(f"ttsfleet mcp exited:\n{self.log_path.read_text()[-4000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def audit(self) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=30)


class RecordingProxy:
    """A plain-HTTP hop on 127.0.0.1 in front of the real apiserver that keeps what each request
    carried: how a test sees the headers the MCP server sends, without a fake apiserver."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        upstream = urllib.parse.urlsplit(cluster["server"])
        ca = base64.b64decode(cluster.pop("certificate-authority-data")).decode()
        tls = ssl.create_default_context(cadata=ca)
        self.seen: list[dict[str, str]] = []
        seen = self.seen

        class Forward(BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                seen.append({"method": self.command, "path": self.path, **headers})
                upstream_call = http.client.HTTPSConnection(
                    upstream.hostname or "", upstream.port, context=tls, timeout=30
                )
                try:
                    upstream_call.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_call.getresponse()
                    data = response.read()
                finally:
                    upstream_call.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = forward

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``seen``."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        cluster["server"] = f"http://127.0.0.1:{self._server.server_port}"
        self.kubeconfig = workdir / "proxied.kubeconfig"
        self.kubeconfig.write_text(json.dumps(config))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.asynccontextmanager
async def connect(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session, presenting ``token`` as a bearer token if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def answer(result: CallToolResult) -> dict[str, Any]:
    """A successful tool result's JSON answer."""
    assert not result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    found: dict[str, Any] = json.loads(text)
    return found


def refusal(result: CallToolResult) -> str:
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


@dataclass
class Fleet:
    cluster: Cluster
    namespace: str
    workdir: Path
    kubeconfig: Path
    load_port: int
    router_log: Path
    jobs_db: Path
    access: Path

    def args(self) -> list[str]:
        """`ttsfleet mcp` flags for this fleet's namespace, identity, pods, logs and jobs."""
        return [
            "--access", str(self.access),
            "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace,
            "--load-address", f"127.0.0.1:{self.load_port}",
            "--router-log", str(self.router_log),
            "--jobs-backend", f"sqlite://{self.jobs_db}",
        ]  # fmt: skip

    def start(self, *args: str) -> McpProcess:
        return McpProcess(self.workdir, [*self.args(), *args])
