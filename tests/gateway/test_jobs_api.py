"""The job endpoints over real HTTP: submit, status with progress, download, idempotency, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from audio_checks import read_wav
from job_helpers import finished, running_gateway, sentences
from timed_fleet import SAMPLE_RATE

SAMPLES_PER_WORD = 320


async def test_a_job_is_accepted_at_once_and_its_audio_downloaded(http: httpx.AsyncClient) -> None:
    text = sentences(12)
    submitted = await http.post("/v1/jobs", json={"text": text, "voice": "timed"})
    assert submitted.status_code == 202
    job = submitted.json()
    assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["audio_url"] is None
    status = await finished(http, job["id"])
    assert status["state"] == "succeeded", status
    assert status["progress"]["pieces_done"] == status["progress"]["pieces_total"] > 1
    audio = await http.get(status["audio_url"])
    assert audio.headers["content-type"] == "audio/wav"
    rate, samples = read_wav(audio.content)
    assert (rate, samples.size) == (SAMPLE_RATE, len(text.split()) * SAMPLES_PER_WORD)


async def test_the_same_idempotency_key_returns_the_first_job(http: httpx.AsyncClient) -> None:
    body = {"text": "Only once, please."}
    first = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc-1"})
    again = await http.post("/v1/jobs", json={**body, "idempotency_key": "abc-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    other = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc-2"})
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"text": "   "}, "text", "String should match pattern"),
        ({"text": "Hi.", "speed": 9}, "speed", "less than or equal to 4"),
        ({"text": "Hi.", "format": "ogg"}, "format", "'mulaw' or 'alaw'"),
        (
            {"text": "Hi.", "format": "opus", "sample_rate": 22050},
            "sample_rate",
            "OGG_OPUS takes sample rates",
        ),
        ({"text": "<speak>Hi <b>there</speak>"}, "text", "malformed SSML at line 1, column"),
        ({"text": "Hi.", "sample_rate": 100}, "sample_rate", "greater than or equal to 8000"),
        ({"text": "Hi.", "callback_url": "ftp://x"}, "callback_url", "pattern"),
        ({"text": "Hi.", "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"voice": "timed"}, "text", "Field required"),
        (
            {"text": "Hi.", "voice": "nobody"},
            "voice",
            "unknown voice 'nobody'; this fleet serves: timed",
        ),
    ],
)
async def test_invalid_submissions_are_400_with_a_clear_json_body(
    http: httpx.AsyncClient, body: dict[str, Any], param: str, message: str
) -> None:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert message in error["message"]


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


async def test_unknown_jobs_are_404(http: httpx.AsyncClient) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/audio"):
        response = await http.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == {
            "message": "no job 'nope'",
            "type": "not_found",
            "param": None,
            "code": None,
        }


async def test_a_full_backlog_is_429_with_retry_after_and_audio_waits_409(
    pods_and_router: int, tmp_path: Path
) -> None:
    """No workers in this gateway: jobs stay queued."""
    async with (
        running_gateway(tmp_path, pods_and_router, workers=0, max_queued=1) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http,
    ):
        first = await http.post("/v1/jobs", json={"text": "First."})
        refused = await http.post("/v1/jobs", json={"text": "Second."})
        early = await http.get(f"/v1/jobs/{first.json()['id']}/audio")
    assert first.status_code == 202
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["type"] == "overloaded"
    assert early.status_code == 409
    assert early.json()["error"]["message"].endswith(
        "is queued; its audio exists once it has succeeded"
    )
