"""Multi-speaker voices: both engines, a batch of mixed speakers, and the pod's gRPC service.

The voice is joe's with Piper's speaker conditioning added (multi_speaker_voice),
run with noise off so that audio can be compared sample by sample.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from audio_checks import pcm16, snr_db, synthesize_whole
from multi_speaker_voice import SPEAKERS, build_voice, voice
from speech_recognition import transcribe, whisper_model, word_error_rate
from voices import pod_config, running_server

from ttsfleet import audio
from ttsfleet.inference.engine import Utterance
from ttsfleet.inference.engines.piper_onnx import PiperOnnxEngine
from ttsfleet.inference.engines.piper_torch import PiperTorchEngine
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = [pytest.mark.torch, pytest.mark.voice, pytest.mark.usefixtures("one_thread")]

SENTENCES = ("The quick brown fox jumps over the lazy dog.", "Is this the right way?")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_voice(tmp_path_factory.mktemp("trio"))


@pytest.fixture(scope="module")
def onnx_engine(model: Path) -> PiperOnnxEngine:
    return PiperOnnxEngine(voice(model, "piper-onnx"), "cpu")


@pytest.fixture(scope="module")
def torch_engine(model: Path) -> PiperTorchEngine:
    """Small windows, so each utterance crosses several decoder steps."""
    return PiperTorchEngine(voice(model, "piper-torch"), "cpu", window_frames=16)


@pytest.fixture(scope="module")
def utterances(onnx_engine: PiperOnnxEngine) -> list[Utterance]:
    return [onnx_engine.utterances(text)[0] for text in SENTENCES]


def test_both_engines_speak_each_speaker_alike_and_speakers_differ(
    onnx_engine: PiperOnnxEngine, torch_engine: PiperTorchEngine, utterances: list[Utterance]
) -> None:
    by_speaker: dict[int, list[np.ndarray]] = {}
    for speaker in (0, 2):
        params = replace(onnx_engine.default_params(1.0), speaker=speaker)
        assert params.noise_scale == params.noise_w == 0.0
        for utterance in utterances:
            (theirs,) = synthesize_whole(onnx_engine, [(utterance, params)])
            (ours,) = synthesize_whole(torch_engine, [(utterance, params)])
            assert len(ours) == len(theirs), f"speaker {speaker}: durations differ"
            assert snr_db(ours, theirs) >= 40.0, f"speaker {speaker}"
            by_speaker.setdefault(speaker, []).append(theirs)
    for first, other in zip(by_speaker[0], by_speaker[2], strict=True):
        length = min(len(first), len(other))
        correlation = np.corrcoef(first[:length], other[:length])[0, 1]
        assert len(first) != len(other) or correlation < 0.9, "speakers 0 and 2 sound alike"


def test_a_batch_of_mixed_speakers_gets_each_speakers_own_audio(
    torch_engine: PiperTorchEngine, utterances: list[Utterance]
) -> None:
    default = torch_engine.default_params(1.0)
    speakers = (0, 1, 2, 1, None)  # None: the voice's default, speaker 0
    items = [
        (utterances[row % 2], replace(default, speaker=speaker))
        for row, speaker in enumerate(speakers)
    ]
    batched = synthesize_whole(torch_engine, items)
    for (utterance, params), together in zip(items, batched, strict=True):
        speaker = 0 if params.speaker is None else params.speaker
        (alone,) = synthesize_whole(torch_engine, [(utterance, replace(params, speaker=speaker))])
        assert len(together) == len(alone)
        assert snr_db(together, alone) >= 40.0


@pytest.mark.whisper
def test_every_speaker_is_understood(
    onnx_engine: PiperOnnxEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The built voice still speaks: Whisper base hears each speaker's words."""
    whisper = whisper_model(tmp_path_factory.mktemp("whisper"))
    text = " ".join(SENTENCES)
    errors = {}
    for speaker in range(len(SPEAKERS)):
        params = replace(onnx_engine.default_params(1.0), speaker=speaker)
        spoken = np.concatenate(
            synthesize_whole(onnx_engine, [(u, params) for u in onnx_engine.utterances(text)])
        )
        heard = transcribe(whisper, spoken, onnx_engine.info.sample_rate)
        errors[SPEAKERS[speaker]] = word_error_rate(text, heard)
    print(f"word error rate by speaker: {errors}")
    assert max(errors.values()) <= 0.15, errors


def test_default_speaker_comes_from_the_voice_defaults(model: Path) -> None:
    engine = PiperOnnxEngine(voice(model, "piper-onnx", speaker=1), "cpu")
    assert engine.default_params(1.0).speaker == 1
    assert engine.info.speakers.resolve("trio", "") == 1


@pytest.fixture
async def stub(
    model: Path, onnx_engine: PiperOnnxEngine, torch_engine: PiperTorchEngine
) -> AsyncIterator[tts_pb2_grpc.TTSServiceStub]:
    """A pod serving the voice on both engines (trio: ONNX, trio-torch: torch)."""
    engines = {"trio": onnx_engine, "trio-torch": torch_engine}
    voices = (voice(model, "piper-onnx"), voice(model, "piper-torch", "trio-torch"))
    async with (
        running_server(pod_config(*voices), engines) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield tts_pb2_grpc.TTSServiceStub(channel)


async def test_list_voices_lists_the_speakers(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    listed = await stub.ListVoices(tts_pb2.ListVoicesRequest())
    for entry in listed.voices:
        assert [(s.name, s.id) for s in entry.speakers] == [
            (name, i) for i, name in enumerate(SPEAKERS)
        ]


async def test_a_request_picks_its_speaker_by_name_or_id(
    stub: tts_pb2_grpc.TTSServiceStub, onnx_engine: PiperOnnxEngine
) -> None:
    text = SENTENCES[0]
    params = replace(onnx_engine.default_params(1.0), speaker=1)
    (spoken,) = synthesize_whole(onnx_engine, [(onnx_engine.utterances(text)[0], params)])
    expected = pcm16(audio.to_pcm16(spoken)).astype(np.float32)
    for voice_name in ("trio", "trio-torch"):
        for speaker in ("bo", "1", " bo "):
            chunks = stub.StreamSynthesize(
                tts_pb2.TTSRequest(text=text, voice=voice_name, speaker=speaker)
            )
            got = pcm16(b"".join([chunk.chunk async for chunk in chunks])).astype(np.float32)
            assert len(got) == len(expected)
            assert snr_db(got, expected) >= 40.0, (voice_name, speaker)
    default = stub.StreamSynthesize(tts_pb2.TTSRequest(text=text, voice="trio"))
    first = stub.StreamSynthesize(tts_pb2.TTSRequest(text=text, voice="trio", speaker="ada"))
    assert b"".join([c.chunk async for c in default]) == b"".join([c.chunk async for c in first])


@pytest.mark.parametrize("speaker", ["zed", "3", "-1", "Bo"])
async def test_an_unknown_speaker_is_invalid_and_named(
    stub: tts_pb2_grpc.TTSServiceStub, speaker: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Synthesize(tts_pb2.TTSRequest(text="Hello.", voice="trio", speaker=speaker))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert f"unknown speaker {speaker!r} for voice 'trio'" in details
    assert "ada (0), bo (1), cy (2)" in details
