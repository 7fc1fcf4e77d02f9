"""One request's spans reach a real OTLP receiver (Jaeger) as one trace with the right parents.

The local fleet runs with OpenTelemetry's one setting (OTEL_EXPORTER_OTLP_ENDPOINT)
pointing at Jaeger on 127.0.0.1: the gateway and router in the `ttsfleet up`
process, the pods as its children. A speech request over HTTP must come back
as a single trace: gateway HTTP span → the gateway's gRPC call → the router's
server span → the router's call to a pod → the pod's server span → the pod's
synthesis span, and the log lines carry the same trace id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from observability.tools import locate
from timed_fleet import free_port

pytestmark = pytest.mark.voice

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 120  # generous bounds: a hang fails, a slow machine does not


@contextlib.contextmanager
def jaeger(workdir: Path) -> Iterator[tuple[int, str]]:
    """Jaeger (v2, in-memory) with OTLP/gRPC and its query API on free loopback ports."""
    otlp, query, query_grpc = free_port(), free_port(), free_port()
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
            },
            "telemetry": {"metrics": {"level": "none"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"127.0.0.1:{query}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }
    (workdir / "jaeger.yaml").write_text(yaml.safe_dump(config))
    log = (workdir / "jaeger.log").open("w")
    process = subprocess.Popen(
        [str(locate()["jaeger"]), "--config", str(workdir / "jaeger.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},  # Jaeger does not trace itself
    )
    url = f"http://127.0.0.1:{query}"
    try:
        wait_until(lambda: get_json(f"{url}/api/services") is not None, "Jaeger's query API")
        yield otlp, url
    finally:
        process.terminate()
        process.wait(timeout=30)


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait_until(ready: Any, what: str) -> None:
    deadline = time.monotonic() + SECONDS
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not ready after {SECONDS} s"
        time.sleep(0.5)


@contextlib.contextmanager
def traced_fleet(otlp_port: int, workdir: Path) -> Iterator[tuple[int, Path]]:
    """`ttsfleet up` with the HTTP gateway, exporting spans; yields the HTTP port and its log."""
    http = free_port()
    log_path = workdir / "fleet.log"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ttsfleet.cli", "up", "-f", str(ROOT / "examples/quickstart.yaml"),
         "--port", str(free_port()), "--http-port", str(http), "--jobs-dir", str(workdir / "jobs")],
        env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("w"),
    )  # fmt: skip
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{http}/healthz") is not None, "the fleet")
        yield http, log_path
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=SECONDS)


def speak(http: int, request_id: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http}/v1/audio/speech",
        data=json.dumps(
            {
                "model": "tts-1",
                "voice": "joe",
                "input": "Traces tell the story.",
                "response_format": "wav",
            }
        ).encode(),
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=SECONDS) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{error.code}: {error.read().decode()}") from error


def find_trace(url: str, request_id: str) -> dict[str, Any]:
    """The trace whose spans carry the request id (exports arrive a little later)."""
    found: dict[str, Any] = {}

    def arrived() -> bool:
        answer = get_json(f"{url}/api/traces?service=ttsfleet-up&limit=50") or {"data": []}
        for candidate in answer["data"]:
            # The gateway numbers the pieces of a text: request id "r" travels as "r.0", ...
            tags = {str(t["value"]) for s in candidate["spans"] for t in s["tags"]}
            services = {p["serviceName"] for p in candidate["processes"].values()}
            if f"{request_id}.0" in tags and "ttsfleet-inference" in services:
                found.update(candidate)
                return True
        return False

    wait_until(arrived, f"a trace with request id {request_id}")
    return found


def test_a_speech_request_is_one_trace_from_gateway_to_engine(tmp_path: Path) -> None:
    with jaeger(tmp_path) as (otlp, url), traced_fleet(otlp, tmp_path) as (http, log_path):
        assert speak(http, "trace-me-1").startswith(b"RIFF")
        found = find_trace(url, "trace-me-1")
    spans = {s["spanID"]: s for s in found["spans"]}
    service = {
        s["spanID"]: found["processes"][s["processID"]]["serviceName"] for s in spans.values()
    }

    def parent(span: dict[str, Any]) -> dict[str, Any] | None:
        refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
        return spans.get(refs[0]["spanID"]) if refs else None

    synthesis = next(s for s in spans.values() if s["operationName"] == "inference.synthesize")
    chain = [synthesis]
    while (up := parent(chain[-1])) is not None:
        chain.append(up)
    kinds = [
        (service[s["spanID"]], {t["key"]: t["value"] for t in s["tags"]}.get("span.kind", ""))
        for s in reversed(chain)
    ]
    assert kinds[0] == ("ttsfleet-up", "server")  # the gateway's HTTP span is the root
    assert ("ttsfleet-inference", "server") in kinds  # the pod continued the trace
    assert kinds.index(("ttsfleet-up", "client")) < kinds.index(("ttsfleet-inference", "server"))
    assert [k for k in kinds if k[0] == "ttsfleet-up"].count(("ttsfleet-up", "server")) >= 2
    trace_id = found["traceID"]
    logged = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]
    assert any(
        line.get("trace_id") == trace_id and line.get("request_id") == "trace-me-1.0"
        for line in logged
    ), "no log line carries the request's trace id"
