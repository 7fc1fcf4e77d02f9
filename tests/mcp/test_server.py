"""`ttsfleet mcp` through the SDK's own client over streamable HTTP, on a real fleet state."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cluster.control_plane import ControlPlane
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_harness import (
    GRANTS,
    ISSUER_KEY,
    READ_TOOLS,
    SERVICE_ACCOUNT,
    TOKENS,
    Fleet,
    McpProcess,
    RecordingProxy,
    access_file,
    answer,
    connect,
    install_mcp_rbac,
    refusal,
)
from timed_fleet import VOICE, TimedEngine, running_router, stub_for, timed_config

from ttsfleet import logs
from ttsfleet.inference.server import InferenceServer
from ttsfleet.jobs.backend import open_backend
from ttsfleet.jobs.model import JobSpec
from ttsfleet.mcp.governance import CORRELATION_META
from ttsfleet.proto import tts_pb2
from ttsfleet.router.server import RouterServer


@contextlib.contextmanager
def json_logs_to(path: Path) -> Iterator[None]:
    """This process's logs as the router writes them (ttsfleet.logs, JSON lines), into ``path``."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with path.open("a", encoding="utf-8") as stream:
        console, sys.stderr = sys.stderr, stream
        try:
            logs.configure("router")
        finally:
            sys.stderr = console
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


@pytest.fixture
async def router(fleet: Fleet) -> AsyncIterator[RouterServer]:
    """A real pod on the port every kwok pod's load is read from, and a real router for pool
    english in front of it, logging JSON lines to the file the MCP server reads."""
    pod = InferenceServer(timed_config(VOICE), {VOICE: TimedEngine(VOICE, step_seconds=0.001)})
    await pod.start("127.0.0.1", fleet.load_port, None)
    try:
        with json_logs_to(fleet.router_log):
            async with running_router([pod], pool="english") as running:
                yield running
    finally:
        await pod.stop(1.0)


async def synthesize(router: RouterServer, request_id: str) -> None:
    async with stub_for(router) as stub:
        await stub.Synthesize(tts_pb2.TTSRequest(text="Hello there.", request_id=request_id))


async def test_tools_are_listed_with_schemas_and_read_only_hints(server: McpProcess) -> None:
    async with connect(server.url, TOKENS["alice"]) as session:
        listed = (await session.list_tools()).tools
    tools = {tool.name: tool for tool in listed}
    assert sorted(tools) == READ_TOOLS  # the write tools are off by default
    for tool in listed:
        assert tool.description
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.input_schema["type"] == "object"
    assert tools["fleet_overview"].input_schema.get("required") is None
    assert tools["pool_load"].input_schema["required"] == ["pool"]
    assert tools["pool_events"].input_schema["properties"]["limit"]["maximum"] == 500
    assert tools["request_path"].input_schema["properties"]["id"]["maxLength"] == 128


async def test_fleet_overview_says_why_a_pool_is_not_ready(server: McpProcess) -> None:
    async with connect(server.url, TOKENS["alice"]) as session:
        overview = answer(await session.call_tool("fleet_overview", {}))
    pools = {pool["name"]: pool for pool in overview["pools"]}
    english, huge = pools["english"], pools["huge"]
    assert english["ready"] and english["replicas"]["ready"] == 2
    assert "notReadyBecause" not in english and english["unschedulablePods"] == []
    assert not huge["ready"]
    [pod] = huge["unschedulablePods"]
    assert pod["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in pod["message"]
    because = huge["notReadyBecause"]
    assert because[0].startswith("ReplicasNotReady: 0/1 replicas ready")
    assert any("cannot be scheduled" in line and "nvidia.com/gpu" in line for line in because)
    assert overview["voices"] == [
        {"name": "joe", "engine": "piper-onnx", "language": "en-US", "pools": ["english", "huge"]}
    ]


async def test_pool_load_reads_the_pods_and_the_router_log(
    server: McpProcess, router: RouterServer
) -> None:
    for _ in range(3):
        await synthesize(router, uuid.uuid4().hex)
    async with connect(server.url, TOKENS["alice"]) as session:
        load = answer(await session.call_tool("pool_load", {"pool": "english"}))
        missing = refusal(await session.call_tool("pool_load", {"pool": "nope"}))
    # Both kwok pods' reports come from the one real pod on the load port.
    assert load["live"]["pods"] == 2 and load["live"]["reportingPods"] == 2
    assert load["live"]["queueCapacity"] == 2 * 64
    assert [p["report"]["queueCapacity"] for p in load["pods"]] == [64, 64]
    recent = load["recentRequests"]
    assert recent["requests"] >= 3 and recent["codes"]["OK"] >= 3 and recent["errorRate"] == 0
    assert 0 < recent["latencySeconds"]["p50"] <= recent["latencySeconds"]["max"] < 30
    assert "no TTSPool 'nope'" in missing


async def test_request_path_by_request_id_and_by_job_id(
    server: McpProcess, fleet: Fleet, router: RouterServer
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    await synthesize(router, request_id)
    backend = await open_backend(f"sqlite://{fleet.jobs_db}")
    try:
        job, _ = await backend.submit(JobSpec(text="A long story, told later."))
    finally:
        await backend.close()
    async with connect(server.url, TOKENS["alice"]) as session:
        by_request = answer(await session.call_tool("request_path", {"id": request_id}))
        by_job = answer(await session.call_tool("request_path", {"id": job.id}))
        unknown = answer(await session.call_tool("request_path", {"id": "never-seen"}))
    assert by_request["foundIn"] == ["router_log"] and by_request["job"] is None
    finished = by_request["router"]["finished"]
    assert finished["pool"] == "english" and finished["code"] == "OK"
    assert finished["pod"] == f"127.0.0.1:{fleet.load_port}" and finished["attempts"] == 1
    assert by_request["router"]["retries"] == []
    assert by_job["foundIn"] == ["jobs"]
    assert by_job["job"]["state"] == "queued" and by_job["job"]["attempts"] == 0
    assert unknown["foundIn"] == [] and unknown["sources"] == ["jobs", "router_log"]


async def test_pool_events_are_the_pools_own(server: McpProcess) -> None:
    async with connect(server.url, TOKENS["alice"]) as session:
        english = answer(await session.call_tool("pool_events", {"pool": "english", "limit": 200}))
        huge = answer(await session.call_tool("pool_events", {"pool": "huge"}))
    reasons = {event["reason"] for event in english["events"]}
    assert {"ScalingReplicaSet", "Scheduled"} <= reasons
    assert all("huge" not in event["object"] for event in english["events"])
    assert english["restarts"] == []
    assert any(
        e["reason"] == "FailedScheduling" and "nvidia.com/gpu" in e["message"]
        for e in huge["events"]
    )


async def test_unauthenticated_calls_are_refused_and_audited(server: McpProcess) -> None:
    before = len(server.audit())
    for token in (None, "not-a-known-token", ISSUER_KEY.token("erin@example.com", "other-aud")):
        with pytest.raises(ExceptionGroup) as refused_at_the_door:
            async with connect(server.url, token):
                pass
        assert refused_at_the_door.group_contains(MCPError, match="Server returned an error")
    refused = server.audit()[before:]
    assert len(refused) >= 3
    assert all(r["who"] is None and r["outcome"] == "refused" for r in refused)
    assert all(r["detail"].startswith("HTTP 401") for r in refused)


async def test_a_tool_outside_the_grant_is_refused_until_granted(
    server: McpProcess, fleet: Fleet
) -> None:
    async with connect(server.url, TOKENS["bob"]) as session:
        overview = await session.call_tool("fleet_overview", {})
        refused = await session.call_tool("pool_load", {"pool": "english"})
        assert refusal(refused) == "bob may not call pool_load"
        ok, no = server.audit()[-2:]
        # The access file is re-read when it changes: the open session gets the new grant.
        access_file(fleet.access, {**GRANTS, "bob": ["fleet_overview", "pool_load"]})
        try:
            assert answer(await session.call_tool("pool_load", {"pool": "english"}))
        finally:
            access_file(fleet.access, GRANTS)
    assert (ok["who"], ok["tool"], ok["outcome"]) == ("bob", "fleet_overview", "ok")
    assert (no["who"], no["tool"], no["outcome"]) == ("bob", "pool_load", "refused")
    assert no["params"] == {"pool": "english"} and no["detail"] == "bob may not call pool_load"
    for record in (ok, no):
        assert record["timestamp"].startswith("20") and 0 <= record["duration_ms"] < 30_000
    # The correlation id the audit keeps is the one the caller was given.
    assert [ok["correlation_id"], no["correlation_id"]] == [
        (r.meta or {})[CORRELATION_META] for r in (overview, refused)
    ]


async def test_calls_the_schema_refuses_are_audited_too(server: McpProcess) -> None:
    async with connect(server.url, TOKENS["dave"]) as session:
        too_many = await session.call_tool("pool_events", {"pool": "english", "limit": 10_000})
        assert too_many.is_error
        unknown = await session.call_tool("delete_pool", {"pool": "english"})
        assert unknown.is_error
    bad, missing = server.audit()[-2:]
    assert (bad["who"], bad["tool"], bad["outcome"]) == ("dave", "pool_events", "error")
    assert bad["params"] == {"pool": "english", "limit": 10_000}
    assert (missing["tool"], missing["outcome"]) == ("delete_pool", "error")


async def test_an_oidc_jwt_names_an_identity(server: McpProcess) -> None:
    async with connect(server.url, ISSUER_KEY.token("erin@example.com")) as session:
        answer(await session.call_tool("fleet_overview", {}))
        refused = refusal(await session.call_tool("pool_events", {"pool": "english"}))
    assert refused == "erin may not call pool_events"
    assert [r["who"] for r in server.audit()[-2:]] == ["erin", "erin"]


async def test_every_apiserver_request_carries_the_calls_correlation_id(fleet: Fleet) -> None:
    workdir = fleet.workdir / "proxied"
    workdir.mkdir()
    proxy = RecordingProxy(fleet.kubeconfig, workdir)
    process = McpProcess(workdir, [*fleet.args(), "--kubeconfig", str(proxy.kubeconfig)])
    try:
        async with connect(process.url, TOKENS["alice"]) as session:
            await session.call_tool("pool_events", {"pool": "english"})
        [record] = process.audit()
    finally:
        process.stop()
        proxy.close()
    ns = fleet.namespace
    assert {(r["method"], r["path"].split("?")[0]) for r in proxy.seen} == {
        ("GET", f"/apis/ttsfleet.dev/v1alpha1/namespaces/{ns}/ttspools"),
        ("GET", f"/apis/ttsfleet.dev/v1alpha1/namespaces/{ns}/ttsvoices"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        ("GET", f"/apis/apps/v1/namespaces/{ns}/deployments"),
        ("GET", f"/api/v1/namespaces/{ns}/events"),
    }
    assert {(r["x-request-id"], r["x-correlation-id"]) for r in proxy.seen} == {
        (record["correlation_id"], record["correlation_id"])
    }


def can_i(control_plane: ControlPlane, namespace: str, verb: str, resource: str) -> str:
    account = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    args = ["auth", "can-i", verb, *resource.split(" "), "-n", namespace, f"--as={account}"]
    return control_plane.kubectl(*args, check=False).stdout.strip()


READ_RESOURCES = ("ttspools", "ttsvoices", "pods", "events", "deployments")
WRITES = ("create", "update", "patch", "delete", "deletecollection")


def test_the_service_account_cannot_write(fleet: Fleet, control_plane: ControlPlane) -> None:
    install_mcp_rbac(control_plane, fleet.namespace)
    ns = fleet.namespace
    for resource in READ_RESOURCES:
        assert [can_i(control_plane, ns, verb, resource) for verb in ("get", "list", "watch")] == [
            "yes"
        ] * 3
    for resource in (*READ_RESOURCES, "ttspools --subresource=scale", "secrets", "configmaps"):
        assert [can_i(control_plane, ns, verb, resource) for verb in WRITES] == ["no"] * 5
    assert can_i(control_plane, ns, "get", "secrets") == "no"


async def test_scale_acts_only_on_a_second_identitys_approval(
    fleet: Fleet, control_plane: ControlPlane
) -> None:
    install_mcp_rbac(control_plane, fleet.namespace, "mcp.writeTool.enabled=true")
    ns = fleet.namespace
    assert can_i(control_plane, ns, "patch", "ttspools --subresource=scale") == "yes"
    assert can_i(control_plane, ns, "delete", "ttspools") == "no"
    assert can_i(control_plane, ns, "patch", "ttspools") == "no"
    process = fleet.start("--enable-scale")
    try:
        async with (
            connect(process.url, TOKENS["carol"]) as carol,
            connect(process.url, TOKENS["dave"]) as dave,
            connect(process.url, TOKENS["alice"]) as alice,
        ):
            tools = {t.name: t for t in (await carol.list_tools()).tools}
            hints = tools["propose_scale"].annotations
            assert hints is not None and not hints.read_only_hint and not hints.destructive_hint
            assert "outside pool english's bounds 1..3" in refusal(
                await carol.call_tool("propose_scale", {"pool": "english", "replicas": 5})
            )
            assert refusal(
                await alice.call_tool("propose_scale", {"pool": "english", "replicas": 3})
            ).endswith("alice may not call propose_scale")
            proposal = answer(
                await carol.call_tool("propose_scale", {"pool": "english", "replicas": 3})
            )
            own = refusal(
                await carol.call_tool("approve_scale", {"proposal_id": proposal["proposalId"]})
            )
            assert "a second identity must approve" in own
            assert (fleet.cluster.pool("english") or {})["spec"]["replicas"] == 2
            approved = answer(
                await dave.call_tool("approve_scale", {"proposal_id": proposal["proposalId"]})
            )
            again = refusal(
                await dave.call_tool("approve_scale", {"proposal_id": proposal["proposalId"]})
            )
        assert (approved["replicas"], approved["proposedBy"], approved["approvedBy"]) == (
            3,
            "carol",
            "dave",
        )
        assert (fleet.cluster.pool("english") or {})["spec"]["replicas"] == 3
        assert "unknown or expired" in again
        outcomes = [(r["who"], r["tool"], r["outcome"]) for r in process.audit()[-5:]]
        assert outcomes == [
            ("alice", "propose_scale", "refused"),
            ("carol", "propose_scale", "ok"),
            ("carol", "approve_scale", "error"),
            ("dave", "approve_scale", "ok"),
            ("dave", "approve_scale", "error"),
        ]
    finally:
        process.stop()
        fleet.cluster.kubectl("scale", "ttspool/english", "--replicas=2")
        install_mcp_rbac(control_plane, fleet.namespace)


async def test_stdio_serves_whoever_the_local_token_names(fleet: Fleet) -> None:
    audit = fleet.workdir / "stdio-audit.jsonl"
    argv = ["-m", "ttsfleet.cli", "mcp", "--transport", "stdio", "--audit-log", str(audit)]
    outcomes = []
    for token in (TOKENS["bob"], ""):
        params = StdioServerParameters(
            command=sys.executable,
            args=[*argv, *fleet.args()],
            env={"TTSFLEET_MCP_TOKEN": token},
            cwd=fleet.workdir,
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            overview = await session.call_tool("fleet_overview", {})
            outcomes.append(overview.is_error)
            if token:
                assert [p["name"] for p in answer(overview)["pools"]] == ["english", "huge"]
                refused = refusal(await session.call_tool("pool_load", {"pool": "english"}))
                assert refused.endswith("bob may not call pool_load")
    assert outcomes == [False, True]
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["who"], r["tool"], r["outcome"]) for r in records] == [
        ("bob", "fleet_overview", "ok"),
        ("bob", "pool_load", "refused"),
        (None, "fleet_overview", "refused"),
    ]
