"""The access file, audit redaction and scale approvals as pure logic, and the correlation id on
load reads as a real gRPC server receives it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from mcp_harness import GRANTS, ISSUER_KEY, TOKENS, Issuer, access_file

from ttsfleet.mcp.access import AccessFile
from ttsfleet.mcp.approvals import ApprovalError, Approvals
from ttsfleet.mcp.audit import REDACTED, Audit
from ttsfleet.mcp.load import read_report
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc


@pytest.fixture
def access(tmp_path: Path) -> AccessFile:
    return AccessFile(access_file(tmp_path / "access.yaml", GRANTS))


def test_tokens_and_jwts_name_identities(access: AccessFile) -> None:
    bob = access.identify(TOKENS["bob"])
    assert bob is not None and bob.name == "bob"
    assert bob.may("fleet_overview") and not bob.may("pool_load")
    dave = access.identify(TOKENS["dave"])
    assert dave is not None and dave.may("approve_scale")
    erin = access.identify(ISSUER_KEY.token("erin@example.com"))
    assert erin is not None and erin.name == "erin"


@pytest.mark.parametrize(
    "token",
    [
        "nobody",
        ISSUER_KEY.token("erin@example.com", audience="someone-else"),
        ISSUER_KEY.token("erin@example.com", lifetime=-60),
        ISSUER_KEY.token("mallory@example.com"),
        Issuer().token("erin@example.com"),  # same kid, another key
    ],
    ids=["unknown", "audience", "expired", "unmapped-subject", "forged"],
)
def test_anything_else_names_no_one(access: AccessFile, token: str) -> None:
    assert access.identify(token) is None


def test_a_broken_edit_keeps_the_last_good_grants(access: AccessFile) -> None:
    access.path.write_text("identities: {not: a list}\n", encoding="utf-8")
    os.utime(access.path, ns=(1, 1))
    assert access.identify(TOKENS["bob"]) is not None
    access_file(access.path, {**GRANTS, "bob": []})
    bob = access.identify(TOKENS["bob"])
    assert bob is not None and not bob.may("fleet_overview")


def test_the_command_refuses_to_start_without_an_access_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ttsfleet.cli", "mcp", "--access", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"ttsfleet mcp: {tmp_path / 'missing.yaml'}: cannot be read" in done.stderr


def test_audit_records_redact_secrets() -> None:
    stream = io.StringIO()
    params = {"pool": "english", "apiToken": "t0k", "nested": [{"password": "p", "n": 1}]}
    Audit(stream).record(
        who="alice", tool="t", params=params, outcome="ok", started=0.0, correlation_id="c"
    )
    record = json.loads(stream.getvalue())
    assert record["params"] == {
        "pool": "english",
        "apiToken": REDACTED,
        "nested": [{"password": REDACTED, "n": 1}],
    }
    assert record["timestamp"] == "1970-01-01T00:00:00+00:00"


def test_a_proposal_is_approved_once_by_someone_else_before_it_expires() -> None:
    now = [0.0]
    approvals = Approvals(ttl_seconds=60, clock=lambda: now[0])
    first = approvals.propose("carol", "ns", "english", 3)
    with pytest.raises(ApprovalError, match="second identity"):
        approvals.take(first.id, "carol")
    assert approvals.take(first.id, "dave") == first
    with pytest.raises(ApprovalError, match="unknown or expired"):
        approvals.take(first.id, "dave")
    late = approvals.propose("carol", "ns", "english", 2)
    now[0] = 61.0
    with pytest.raises(ApprovalError, match="unknown or expired"):
        approvals.take(late.id, "dave")


class RecordingLoad(ttsfleet_v1_pb2_grpc.LoadReporterServicer):
    """A LoadReporter that keeps each call's metadata."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def WatchLoad(self, request: Any, context: Any) -> Iterator[Any]:
        self.metadata.append(dict(context.invocation_metadata()))
        yield ttsfleet_v1_pb2.LoadReport(queue_depth=3, queue_capacity=32)


async def test_load_reads_carry_the_correlation_id() -> None:
    servicer = RecordingLoad()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ttsfleet_v1_pb2_grpc.add_LoadReporterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        report = await read_report(f"127.0.0.1:{port}", 5.0, "corr-1")
    finally:
        server.stop(grace=None)
    assert report is not None and report["queueDepth"] == 3
    [seen] = servicer.metadata
    assert seen["x-request-id"] == seen["x-correlation-id"] == "corr-1"
