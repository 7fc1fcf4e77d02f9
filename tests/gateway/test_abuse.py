"""Abuse of the gateway over real HTTP and gRPC on 127.0.0.1: callers without keys, callers
after other callers' jobs, rotated keys, oversized and fast callers, hostile callback URLs,
dead letters re-driven."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from job_helpers import running_gateway

from ttsfleet.gateway.auth import ApiKeys, RateLimit
from ttsfleet.gateway.server import Gateway
from ttsfleet.jobs.model import MAX_JOB_TEXT, JobState
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

V1 = ttsfleet_v1_pb2
ALICE, BOB = "alice-key-1", "bob-key-1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(f"# tenant key\nalice {ALICE}\nbob {BOB}\n")
    return path


@pytest.fixture
async def guarded(pods_and_router: int, tmp_path: Path, keys_file: Path) -> AsyncIterator[Gateway]:
    """A gateway with keys and no workers (jobs stay queued), tight limits."""
    async with running_gateway(
        tmp_path,
        pods_and_router,
        workers=0,
        api_keys=ApiKeys(keys_file, check_seconds=0.1),
        rate=RateLimit(20, 5),
        max_queued_per_tenant=3,
        max_body_bytes=300_000,
    ) as gateway:
        yield gateway


@pytest.fixture
async def client(guarded: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{guarded.port}", timeout=30) as http:
        yield http


async def test_no_key_or_a_wrong_key_is_401_and_probes_stay_open(
    client: httpx.AsyncClient, guarded: Gateway
) -> None:
    for headers in ({}, bearer("guess"), {"X-API-Key": "guess"}):
        refused = await client.post("/v1/jobs", json={"text": "Hi."}, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["type"] == "authentication_error"
    assert (
        await client.post("/v1/audio/speech", json={"model": "m", "input": "x"})
    ).status_code == 401
    assert (await client.get("/healthz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'ttsfleet_gateway_rejected_total{reason="unauthenticated"} 4.0' in metrics
    ok = await client.post("/v1/jobs", json={"text": "Hi."}, headers={"X-API-Key": ALICE})
    assert ok.status_code == 202
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as channel:
        jobs = ttsfleet_v1_pb2_grpc.JobsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused_rpc:
            await jobs.GetJob(V1.GetJobRequest(id=ok.json()["id"]))
        assert refused_rpc.value.code() is grpc.StatusCode.UNAUTHENTICATED
        mine = await jobs.GetJob(
            V1.GetJobRequest(id=ok.json()["id"]), metadata=(("authorization", f"Bearer {ALICE}"),)
        )
        assert mine.id == ok.json()["id"]


async def test_a_tenant_sees_only_its_own_jobs_and_idempotency_keys(
    client: httpx.AsyncClient, guarded: Gateway
) -> None:
    body = {"text": "Private words.", "idempotency_key": "order-1"}
    alices = await client.post("/v1/jobs", json=body, headers=bearer(ALICE))
    bobs = await client.post("/v1/jobs", json=body, headers=bearer(BOB))
    assert (alices.status_code, bobs.status_code) == (202, 202), "one key, two tenants, two jobs"
    job_id = alices.json()["id"]
    assert bobs.json()["id"] != job_id
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/audio"):
        assert (await client.get(path, headers=bearer(BOB))).status_code == 404
    assert (await client.get(f"/v1/jobs/{job_id}", headers=bearer(ALICE))).status_code == 200
    again = await client.post("/v1/jobs", json=body, headers=bearer(ALICE))
    assert (again.status_code, again.json()["id"]) == (200, job_id)
    changed = await client.post(
        "/v1/jobs", json={**body, "text": "Other words."}, headers=bearer(ALICE)
    )
    assert changed.status_code == 422
    assert changed.json()["error"]["param"] == "idempotency_key"
    assert job_id in changed.json()["error"]["message"]
    stored = await guarded.jobs.backend.get(job_id)
    assert stored is not None and stored.spec.tenant == "alice"


async def test_keys_rotate_without_a_restart(client: httpx.AsyncClient, keys_file: Path) -> None:
    assert (await client.get("/v1/dead-letters", headers=bearer(ALICE))).status_code == 200
    await asyncio.to_thread(keys_file.write_text, f"alice alice-key-2\nbob {BOB}\n")
    # The file is looked at every 0.1 s here (1 s by default): bounded wait for the change.
    for _ in range(50):
        old = await client.get("/v1/dead-letters", headers=bearer(ALICE))
        if old.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert old.status_code == 401
    assert (await client.get("/v1/dead-letters", headers=bearer("alice-key-2"))).status_code == 200
    assert (await client.get("/v1/dead-letters", headers=bearer(BOB))).status_code == 200


async def test_an_oversized_body_is_413_before_it_is_sent(guarded: Gateway) -> None:
    """Headers promise 10 MB; the answer comes before a byte of body is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    started = time.monotonic()
    writer.write(
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ALICE}\r\nContent-Length: 10000000\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    elapsed = time.monotonic() - started
    writer.close()
    assert status.startswith(b"HTTP/1.1 413"), status
    assert elapsed < 2.0


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):  # 400 KB against a 300 KB limit, no Content-Length
            yield b"a" * 10_000

    refused = await client.post(
        "/v1/jobs",
        content=chunks(),
        headers={**bearer(ALICE), "content-type": "application/json"},
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["type"] == "request_too_large"


async def test_the_largest_allowed_job_fits_the_default_limit(
    pods_and_router: int, tmp_path: Path
) -> None:
    async with (
        running_gateway(tmp_path, pods_and_router, workers=0) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as http,
    ):
        text = ("Word " * (MAX_JOB_TEXT // 5))[:MAX_JOB_TEXT]
        accepted = await http.post("/v1/jobs", json={"text": text})
        over = await http.post("/v1/jobs", json={"text": text + "x"})
    assert accepted.status_code == 202
    assert over.status_code == 400 and over.json()["error"]["param"] == "text"


async def test_a_fast_caller_gets_429_and_others_do_not(client: httpx.AsyncClient) -> None:
    """20 requests a second, bursts of 5: 8 at once leave 3 refused."""
    answers = await asyncio.gather(
        *(client.get("/v1/dead-letters", headers=bearer(ALICE)) for _ in range(8))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 3, statuses
    assert {a.headers["retry-after"] for a in answers if a.status_code == 429} == {"1"}
    assert (await client.get("/v1/dead-letters", headers=bearer(BOB))).status_code == 200


async def test_a_tenants_backlog_is_limited_and_others_still_submit(
    client: httpx.AsyncClient,
) -> None:
    answers = []
    for i in range(4):
        answers.append(
            await client.post("/v1/jobs", json={"text": f"Job {i}."}, headers=bearer(ALICE))
        )
        await asyncio.sleep(0.06)  # within the rate limit
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[-1].headers["retry-after"] == "5"
    assert "3 of your jobs are waiting" in answers[-1].json()["error"]["message"]
    other = await client.post("/v1/jobs", json={"text": "Mine."}, headers=bearer(BOB))
    assert other.status_code == 202


@pytest.mark.parametrize(
    "url",
    ["https://a:b:c/", "http://user:pw@example.com/", "http:///nohost", "http://h:99999/"],
)
async def test_an_unusable_callback_url_is_400_at_submission(
    client: httpx.AsyncClient, guarded: Gateway, url: str
) -> None:
    refused = await client.post(
        "/v1/jobs", json={"text": "Hi.", "callback_url": url}, headers=bearer(ALICE)
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "callback_url"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ttsfleet_v1_pb2_grpc.JobsStub(channel).SubmitJob(
                V1.SubmitJobRequest(text="Hi.", callback_url=url), metadata=(("x-api-key", BOB),)
            )
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("callback_url:")


async def _dead_letter(gateway: Gateway, client: httpx.AsyncClient, key: str) -> str:
    """A job of the key's tenant, dead-lettered through the backend as a worker would."""
    submitted = await client.post("/v1/jobs", json={"text": "Doomed."}, headers=bearer(key))
    backend = gateway.jobs.backend
    claim = await backend.claim("test-worker", wait=2.0)
    assert claim is not None and claim.job.id == submitted.json()["id"]
    assert await backend.fail(
        claim, "failed 3 attempts; last: INTERNAL: boom", JobState.DEAD_LETTERED
    )
    job_id: str = submitted.json()["id"]
    return job_id


async def test_dead_letters_are_listed_inspected_and_redriven_over_http(
    client: httpx.AsyncClient, guarded: Gateway
) -> None:
    job_id = await _dead_letter(guarded, client, ALICE)
    listed: dict[str, Any] = (await client.get("/v1/dead-letters", headers=bearer(ALICE))).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    assert listed["jobs"][0]["error"].endswith("INTERNAL: boom")
    assert (await client.get("/v1/dead-letters", headers=bearer(BOB))).json() == {"jobs": []}
    inspected = await client.get(f"/v1/dead-letters/{job_id}", headers=bearer(ALICE))
    assert inspected.json()["state"] == "dead_lettered"
    assert (
        await client.post(f"/v1/dead-letters/{job_id}/redrive", headers=bearer(BOB))
    ).status_code == 404
    redriven = await client.post(f"/v1/dead-letters/{job_id}/redrive", headers=bearer(ALICE))
    assert redriven.status_code == 202
    assert (redriven.json()["state"], redriven.json()["attempts"]) == ("queued", 0)
    again = await client.post(f"/v1/dead-letters/{job_id}/redrive", headers=bearer(ALICE))
    assert again.status_code == 409
    assert (await client.get("/v1/dead-letters", headers=bearer(ALICE))).json() == {"jobs": []}
    assert (await guarded.jobs.backend.claim("w", wait=2.0)) is not None, "queued again"


async def test_dead_letters_are_listed_and_redriven_over_grpc(
    client: httpx.AsyncClient, guarded: Gateway
) -> None:
    job_id = await _dead_letter(guarded, client, BOB)
    metadata = (("authorization", f"Bearer {BOB}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as channel:
        jobs = ttsfleet_v1_pb2_grpc.JobsStub(channel)
        listed = await jobs.ListDeadLetters(V1.ListDeadLettersRequest(), metadata=metadata)
        assert [j.id for j in listed.jobs] == [job_id]
        assert listed.jobs[0].state == V1.JOB_STATE_DEAD_LETTERED
        redriven = await jobs.RedriveJob(V1.GetJobRequest(id=job_id), metadata=metadata)
        assert (redriven.state, redriven.attempts) == (V1.JOB_STATE_QUEUED, 0)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await jobs.RedriveJob(V1.GetJobRequest(id=job_id), metadata=metadata)
        assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
