"""`ttsfleet up --http-port` as a user runs it: the quickstart fleet plus the gateway, real voice."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from audio_checks import assert_speech, pcm16, read_wav
from timed_fleet import free_port

pytestmark = pytest.mark.voice  # the real Piper voice

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
TEXT = (
    "Chapter one. The lighthouse keeper climbed the stairs every evening. "
    "He lit the lamp, wound the clock, and watched the ships go by. "
    "Nobody had told him that the harbour had closed years ago."
)


async def test_up_serves_jobs_and_speech_over_http(tmp_path: Path) -> None:
    http_port = free_port()
    log = (tmp_path / "fleet.log").open("wb")
    fleet = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttsfleet.cli", "up", "-f", str(QUICKSTART),
        "--port", str(free_port()), "--http-port", str(http_port),
        "--jobs-dir", str(tmp_path / "jobs"), "--log-format", "json",
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=120) as http:
            for _ in range(1800):  # two workers load the voice first: bounded, up to 3 min
                if fleet.returncode is not None:
                    raise AssertionError((tmp_path / "fleet.log").read_text())
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            job = (await http.post("/v1/jobs", json={"text": TEXT, "voice": "joe"})).json()
            for _ in range(1200):
                status = (await http.get(f"/v1/jobs/{job['id']}")).json()
                if status["state"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.1)
            assert status["state"] == "succeeded", status
            rate, samples = read_wav((await http.get(status["audio_url"])).content)
            assert_speech(samples, rate, TEXT)
            speech = await http.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": TEXT, "response_format": "pcm"}
            )
            assert speech.status_code == 200
            assert_speech(pcm16(speech.content), int(speech.headers["x-sample-rate"]), TEXT)
    finally:
        if fleet.returncode is None:
            fleet.send_signal(signal.SIGINT)
        code = await fleet.wait()
        log.close()
    assert code == 0
    assert (tmp_path / "jobs" / "jobs.db").exists()
