"""The worker over real gRPC: a router with timed pods, jobs from both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from audio_checks import decode, read_wav
from job_helpers import callback_receiver, send_callbacks, sentences, worker_for
from timed_fleet import SAMPLE_RATE, VOICE, free_port

from ttsfleet.errors import TTSError
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.model import AudioFormat, JobSpec, JobState
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.router.server import RouterServer

SAMPLES_PER_WORD = 320  # the timed engine's chunk


def address(router: RouterServer) -> str:
    return f"127.0.0.1:{router.port}"


async def test_a_long_job_is_spread_over_pods_and_assembled_in_order(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    text = sentences(24)
    job, _ = await backend.submit(JobSpec(text=text, voice=VOICE))
    async with worker_for(backend, tmp_path, address(router)) as worker:
        ended = await worker.run_once(wait=5.0)
    assert ended is not None and ended.id == job.id
    assert ended.state is JobState.SUCCEEDED and ended.attempts == 1
    assert ended.pieces_done == ended.pieces_total > 4
    audio = b"".join([c async for c in DirectoryStore(tmp_path).read(ended.result)])
    rate, samples = read_wav(audio)
    assert rate == SAMPLE_RATE and samples.size == len(text.split()) * SAMPLES_PER_WORD
    picks = router.metrics.registry.get_sample_value
    per_pod = [
        picks("ttsfleet_router_picks_total", {"pool": "pool", "pod": e.address})
        for e in router.datastore.endpoints
    ]
    assert sum(per_pod) == ended.pieces_total and all(per_pod), per_pod


async def test_pcm_results_are_headerless(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    await backend.submit(JobSpec(text="one two three.", format=AudioFormat.PCM, sample_rate=8000))
    async with worker_for(backend, tmp_path, address(router)) as worker:
        ended = await worker.run_once(wait=5.0)
    assert ended is not None and ended.result.endswith(".pcm")
    assert await DirectoryStore(tmp_path).size(ended.result) == 3 * SAMPLES_PER_WORD


async def test_a_wrong_request_fails_at_once_and_calls_back(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    with callback_receiver() as receiver:
        spec = JobSpec(text="Hello.", voice="nobody", callback_url=receiver.url)
        job, _ = await backend.submit(spec)
        async with worker_for(backend, tmp_path, address(router)) as worker:
            ended = await worker.run_once(wait=5.0)
            await send_callbacks(worker)
    assert ended is not None and ended.state is JobState.FAILED and ended.attempts == 1
    assert ended.error.startswith("NOT_FOUND: unknown voice 'nobody'")
    assert receiver.bodies == [ended.public()]
    assert receiver.bodies[0]["id"] == job.id and receiver.bodies[0]["state"] == "failed"


async def test_an_unavailable_fleet_spends_no_attempts_and_pauses_claims(
    backend: JobBackend, tmp_path: Path
) -> None:
    """No fleet listens on the port: every piece is UNAVAILABLE; the job waits, unspent."""
    job, _ = await backend.submit(JobSpec(text="Nobody will say this."))
    nowhere = f"127.0.0.1:{free_port()}"
    async with worker_for(backend, tmp_path, nowhere) as worker:
        states = [await worker.run_once(wait=5.0) for _ in range(3)]
        held_off = asyncio.get_running_loop().time()
        await worker.gate.wait(asyncio.Event())
        held_off = asyncio.get_running_loop().time() - held_off
    assert [(s.state, s.attempts) for s in states if s] == [(JobState.QUEUED, 0)] * 3
    waiting = await backend.get(job.id)
    assert waiting is not None and waiting.error.startswith("UNAVAILABLE")
    assert worker.metrics.registry.get_sample_value("ttsfleet_jobs_fleet_away_total") == 3
    assert 0.05 < held_off < 1.0, held_off  # the third report: 0.1-0.2 s (QUICK_RETRY)


async def test_a_job_that_keeps_timing_out_is_dead_lettered_with_its_last_error(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    """Pieces get 5 ms: every piece ends DEADLINE_EXCEEDED, which spends attempts."""
    job, _ = await backend.submit(JobSpec(text=sentences(8, words_each=20)))
    async with worker_for(backend, tmp_path, address(router), piece_timeout=0.005) as worker:
        states = [await worker.run_once(wait=5.0) for _ in range(2)]
    assert [s.state for s in states if s] == [JobState.QUEUED, JobState.DEAD_LETTERED]
    dead = await backend.get(job.id)
    assert dead is not None and dead.state is JobState.DEAD_LETTERED
    assert dead.error.startswith("failed 2 attempts; last: DEADLINE_EXCEEDED")
    assert dead.attempts == 2
    dead_count = {"state": "dead_lettered"}
    assert worker.metrics.registry.get_sample_value("ttsfleet_jobs_ended_total", dead_count) == 1
    assert [j.id for j in await backend.dead_letters(None, 10)] == [job.id]


async def test_a_callback_reports_success_with_the_audio_url(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    with callback_receiver() as receiver:
        job, _ = await backend.submit(JobSpec(text="Call me back.", callback_url=receiver.url))
        async with worker_for(backend, tmp_path, address(router)) as worker:
            await worker.run_once(wait=5.0)
            await send_callbacks(worker)
    assert [r["state"] for r in receiver.bodies] == ["succeeded"]
    assert receiver.bodies[0]["audio_url"] == f"/v1/jobs/{job.id}/audio"


async def test_every_encoding_makes_one_file_of_the_whole_job(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    """Many pieces, one encoder: each result decodes whole, as long as the PCM it was made of."""
    text = sentences(40)
    seconds = len(text.split()) * SAMPLES_PER_WORD / SAMPLE_RATE
    encoded = [f for f in AudioFormat if f not in (AudioFormat.WAV, AudioFormat.PCM)]
    for audio_format in encoded:
        await backend.submit(JobSpec(text=text, voice=VOICE, format=audio_format))
    async with worker_for(backend, tmp_path, address(router)) as worker:
        ended = [await worker.run_once(wait=5.0) for _ in encoded]
    for job in ended:
        assert job is not None and job.state is JobState.SUCCEEDED and job.pieces_total > 2
        data = b"".join([c async for c in DirectoryStore(tmp_path).read(job.result)])
        rate, samples = decode(data, job.spec.format.value, job.spec.format.codec.default_rate)
        # MP3 and AAC add their encoder delay and padding (a few frames) once.
        assert samples.size / rate == pytest.approx(seconds, abs=0.15), job.spec.format


async def test_an_ssml_job_goes_to_the_fleet_whole(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    """Its markup spans sentences, so it is one piece (breaks: tests/inference/test_ssml_speech)."""
    text = f'<speak>{sentences(6)} <break time="2s"/> {sentences(6)}</speak>'
    with pytest.raises(TTSError, match="line 1, column"):
        JobSpec(text="<speak>unclosed", voice=VOICE)
    await backend.submit(JobSpec(text=text, voice=VOICE, format=AudioFormat.PCM))
    async with worker_for(backend, tmp_path, address(router)) as worker:
        ended = await worker.run_once(wait=5.0)
    assert ended is not None and ended.state is JobState.SUCCEEDED
    assert ended.pieces_total == 1
    words = 2 * len(sentences(6).split())
    assert await DirectoryStore(tmp_path).size(ended.result) == 2 * words * SAMPLES_PER_WORD
