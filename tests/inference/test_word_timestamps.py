"""Word timings from the model's own durations, on both engines, against what a recogniser hears.

Each pod serves one engine (ONNX with its duration output, torch with the
durations it computes); the words must be in order, inside the audio, on
speech, and within 100 ms (median) of where Whisper hears each word start.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from audio_checks import pcm16
from faster_whisper import WhisperModel
from speech_recognition import Heard, start_differences, whisper_model, word_starts
from voices import JOE, JOE_QUIET, load_engines, pod_config, running_server

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice

TEXT = (
    "Thank you for calling the support line. Please hold while we find someone to help you. "
    "Your package left our warehouse this morning, and it should arrive before the weekend."
)
JOE_TORCH = replace(JOE_QUIET, name="joe-torch", engine="piper-torch")
WORDS = tts_pb2.TTSRequest(text=TEXT, word_timestamps=True, word_phonemes=True)
FRAME = 0.02  # seconds of audio per energy frame
# A frame this loud (against the loudest) is speech: the voice's pauses stay
# under 1/60, a softly spoken sentence-final "you" is at 1/15.
SPEECH = 1 / 30


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    return whisper_model(Path(tmp_path_factory.mktemp("whisper")))


@pytest.fixture(scope="module")
def torch_engines() -> dict[str, Any]:
    return load_engines(JOE_TORCH)


async def streamed(engines: dict[str, Any], voice: str) -> list[tts_pb2.AudioChunk]:
    """The words request streamed from a pod of `voice` (PCM16)."""
    config = pod_config(*[v for v in (JOE_QUIET, JOE, JOE_TORCH) if v.name == voice])
    async with (
        running_server(config, {voice: engines[voice]}) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        return [chunk async for chunk in stub.StreamSynthesize(WORDS)]


def check_timings(
    words: Sequence[tts_pb2.WordTiming], samples: npt.NDArray[np.int16], rate: int
) -> None:
    """In text order, inside the audio, covering it, and each word's span loud with speech."""
    seconds = samples.size / rate
    assert [w.word for w in words][:4] == ["Thank", "you", "for", "calling"]
    assert len(words) == len(TEXT.split())
    for before, after in itertools.pairwise(words):
        assert before.start < before.end <= after.start + 1e-6, (before, after)
    assert 0 <= words[0].start < 0.3 and seconds - 0.5 < words[-1].end <= seconds + 1e-6
    frames = samples[: samples.size // int(FRAME * rate) * int(FRAME * rate)].astype(np.float64)
    loudness = np.sqrt((frames.reshape(-1, int(FRAME * rate)) ** 2).mean(axis=1))
    for word in words:
        first = int(word.start / FRAME)
        span = loudness[first : max(int(word.end / FRAME), first + 1)]
        assert span.max() > SPEECH * loudness.max(), f"{word.word!r} at {word.start:.2f}s is silent"
    assert all(word.phonemes for word in words)


async def test_streamed_words_arrive_with_their_audio_and_match_unary(
    engines: dict[str, Any],
) -> None:
    chunks = await streamed(engines, "joe-quiet")
    rate = chunks[0].sample_rate
    heard = 0.0
    for chunk in chunks:
        heard += len(chunk.chunk) / 2 / rate
        assert all(word.start < heard for word in chunk.words), "a word came before its audio"
    words = [word for chunk in chunks for word in chunk.words]
    samples = pcm16(b"".join(chunk.chunk for chunk in chunks))
    check_timings(words, samples, rate)
    async with (
        running_server(pod_config(JOE_QUIET), engines) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        unary = await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(WORDS)
    assert list(unary.words) == words, "noise off: the same durations either way"


async def test_no_words_unless_asked(engines: dict[str, Any]) -> None:
    async with (
        running_server(pod_config(JOE_QUIET), engines) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        unary = await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(tts_pb2.TTSRequest(text=TEXT))
    assert not unary.words


def heard_from(words: Sequence[tts_pb2.WordTiming]) -> list[Heard]:
    return [Heard(word.word, word.start) for word in words]


@pytest.mark.whisper
async def test_onnx_word_starts_are_where_whisper_hears_them(
    engines: dict[str, Any], whisper: WhisperModel
) -> None:
    chunks = await streamed(engines, "joe")
    rate = chunks[0].sample_rate
    samples = pcm16(b"".join(chunk.chunk for chunk in chunks))
    words = [word for chunk in chunks for word in chunk.words]
    check_timings(words, samples, rate)
    differences = start_differences(
        heard_from(words), word_starts(whisper, samples.astype(np.float32) / 32768, rate)
    )
    median = statistics.median(differences)
    print(
        f"onnx: {len(differences)} words matched, median |start - whisper| {median * 1000:.0f} ms"
    )
    assert len(differences) >= 0.8 * len(words)
    assert median <= 0.1


@pytest.mark.torch
@pytest.mark.whisper
async def test_torch_word_starts_agree_with_onnx_and_whisper(
    engines: dict[str, Any], torch_engines: dict[str, Any], whisper: WhisperModel
) -> None:
    torch_chunks = await streamed(torch_engines, "joe-torch")
    onnx_chunks = await streamed(engines, "joe-quiet")
    rate = torch_chunks[0].sample_rate
    samples = pcm16(b"".join(chunk.chunk for chunk in torch_chunks))
    torch_words = [word for chunk in torch_chunks for word in chunk.words]
    onnx_words = [word for chunk in onnx_chunks for word in chunk.words]
    check_timings(torch_words, samples, rate)
    agreement = [abs(a.start - b.start) for a, b in zip(torch_words, onnx_words, strict=True)]
    differences = start_differences(
        heard_from(torch_words), word_starts(whisper, samples.astype(np.float32) / 32768, rate)
    )
    median = statistics.median(differences)
    print(
        f"torch vs onnx word starts: max {max(agreement) * 1000:.1f} ms, "
        f"median {statistics.median(agreement) * 1000:.1f} ms; "
        f"torch vs whisper: median {median * 1000:.0f} ms over {len(differences)} words"
    )
    assert max(agreement) <= 0.05, "the same voice's durations, on two runtimes"
    assert median <= 0.1
