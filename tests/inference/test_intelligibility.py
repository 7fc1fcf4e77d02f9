"""The pod's speech, in every encoding, as a real recogniser hears it (Whisper base, offline).

Quality is measured, not assumed: a lossy or narrow-band encoding that
garbled words would show here as a word error rate over 5%.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from audio_checks import decode
from faster_whisper import WhisperModel
from speech_recognition import transcribe, whisper_model, word_error_rate
from voices import JOE_QUIET, pod_config, running_server

from ttsfleet import codecs
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = [pytest.mark.voice, pytest.mark.whisper]

SENTENCES = (
    "Thank you for calling the support line. Please hold while we find someone to help you. "
    "Your package left our warehouse this morning and should arrive before the weekend. "
    "If you would like to speak with a person, say agent at any time."
)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    return whisper_model(Path(tmp_path_factory.mktemp("whisper")))


async def test_every_encoding_is_understood_word_for_word(
    whisper: WhisperModel, quiet_engines: dict[str, object]
) -> None:
    rates = {}
    errors = {}
    async with (
        running_server(pod_config(JOE_QUIET), quiet_engines) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        for codec in codecs.CODECS.values():
            response = await stub.Synthesize(
                tts_pb2.TTSRequest(text=SENTENCES, encoding=codec.encoding)
            )
            rate, samples = decode(response.audio, codec.name, response.sample_rate)
            rates[codec.name] = response.sample_rate
            heard = transcribe(whisper, samples, rate)
            errors[codec.name] = word_error_rate(SENTENCES, heard)
            print(
                f"{codec.name:6} {response.sample_rate:6} Hz  WER {errors[codec.name]:.3f}  {heard}"
            )
    assert rates["mulaw"] == rates["alaw"] == 8000, "telephony's own rate"
    assert all(error <= 0.05 for error in errors.values()), errors
