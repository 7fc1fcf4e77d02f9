"""Word timings through the router: a long text's pieces put their words on the request's clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from audio_checks import decode
from timed_fleet import running_router
from voices import JOE_QUIET, load_engines, pod_config, running_servers

from ttsfleet import text
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice

STORY = (
    "The old lighthouse keeper climbed the winding stairs every evening. "
    "He polished the great lamp until it shone. Then he watched the ships pass the rocks. "
    "One stormy night, a small boat lost its way in the fog. The keeper rang the bell again "
    "and again, until the boat turned towards the harbour. In the morning the fishermen came "
    "to thank him. He only smiled, and went to sleep. The next evening he climbed the stairs "
    "again, as he always did."
)


@pytest.fixture(scope="module")
def engines() -> dict[str, Any]:
    return load_engines(JOE_QUIET)


async def test_fanned_out_words_are_the_words_one_pod_would_time(engines: dict[str, Any]) -> None:
    assert len(text.split_text(STORY)) >= 2, "the story must fan out"
    request = tts_pb2.TTSRequest(text=STORY, word_timestamps=True)
    async with running_servers(2, pod_config(JOE_QUIET), engines) as pods:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{pods[0].port}") as channel:
            whole = await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(request)
        async with (
            running_router(
                pods, voices=["joe-quiet"], default_voice="joe-quiet", fanout_min_chars=100
            ) as router,
            grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel,
        ):
            stub = tts_pb2_grpc.TTSServiceStub(channel)
            unary = await stub.Synthesize(request)
            opus = tts_pb2.TTSRequest()
            opus.CopyFrom(request)
            opus.encoding = tts_pb2.AUDIO_ENCODING_OGG_OPUS
            chunks = [chunk async for chunk in stub.StreamSynthesize(opus)]
    assert len(whole.words) == len(STORY.split())
    assert_same_times(unary.words, whole.words)
    # Opus pieces come at 48 kHz: their lengths, which offset the words, are resampled.
    assert_same_times([word for chunk in chunks for word in chunk.words], whole.words)
    rate, samples = decode(b"".join(chunk.chunk for chunk in chunks), "opus", 0)
    assert abs(samples.size / rate - whole.words[-1].end) < 0.5, "the last word ends the audio"


def assert_same_times(
    words: Sequence[tts_pb2.WordTiming], expected: Sequence[tts_pb2.WordTiming]
) -> None:
    assert [w.word for w in words] == [w.word for w in expected]
    for word, other in zip(words, expected, strict=True):
        assert abs(word.start - other.start) < 0.002 and abs(word.end - other.end) < 0.002, (
            word,
            other,
        )
