"""Priority classes from the gateway to the pods: per API key for speech, batch for every job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from job_helpers import running_gateway
from timed_fleet import running_router, timed_pods

from ttsfleet.gateway.auth import ApiKeys, Caller, parse_api_keys
from ttsfleet.inference.server import InferenceServer
from ttsfleet.wire import Priority

LIVE, BULK = "live-key-1", "bulk-key-1"


def admitted(pod: InferenceServer, priority: str) -> float:
    value = pod.metrics.registry.get_sample_value(
        "ttsfleet_inference_queue_wait_seconds_count", {"priority": priority}
    )
    return value or 0.0


def test_a_key_line_may_name_its_class() -> None:
    callers = parse_api_keys("a k1\nb k2 batch\nc k3 interactive\nd k4 urgent\n")
    assert sorted(callers.values(), key=lambda c: c.tenant) == [
        Caller("a", Priority.INTERACTIVE),
        Caller("b", Priority.BATCH),
        Caller("c", Priority.INTERACTIVE),
    ]  # d's line names no class: skipped


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[InferenceServer, httpx.AsyncClient]]:
    keys = tmp_path / "api-keys"
    keys.write_text(f"assistant {LIVE}\naudiobooks {BULK} batch\n")
    async with (
        timed_pods([0.001]) as (pod,),
        running_router([pod]) as router,
        running_gateway(tmp_path, router.port, api_keys=ApiKeys(keys)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as http,
    ):
        yield pod, http


async def test_speech_takes_the_keys_class_and_jobs_are_batch(
    setup: tuple[InferenceServer, httpx.AsyncClient],
) -> None:
    pod, http = setup
    speech = {"model": "tts-1", "input": "Hello there.", "response_format": "pcm"}
    for key in (LIVE, BULK):
        spoken = await http.post("/v1/audio/speech", json=speech, headers={"X-API-Key": key})
        assert spoken.status_code == 200 and spoken.content
    assert (admitted(pod, "interactive"), admitted(pod, "batch")) == (1, 1)
    job = await http.post("/v1/jobs", json={"text": "One. Two."}, headers={"X-API-Key": LIVE})
    assert job.status_code == 202
    for _ in range(500):
        status = (
            await http.get(f"/v1/jobs/{job.json()['id']}", headers={"X-API-Key": LIVE})
        ).json()
        if status["state"] == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert status["state"] == "succeeded", status
    assert admitted(pod, "interactive") == 1 and admitted(pod, "batch") >= 2
