"""Arbitrary Unicode at the text path: every call ends with audio or a clear status."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from audio_checks import read_wav
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voices import JOE, pod_config

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.text import clean_text

pytestmark = pytest.mark.voice  # the real Piper voice

# Nothing legitimate needs longer than this, so a call that takes it has hung.
CALL_DEADLINE_S = 60


@pytest.fixture(scope="module")
def stub(engines: dict[str, Any]) -> Iterator[tts_pb2_grpc.TTSServiceStub]:
    """A server on its own event loop thread, so hypothesis can drive it synchronously."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> InferenceServer:
        server = InferenceServer(pod_config(JOE), {"joe": engines["joe"]})
        await server.start("127.0.0.1", 0, None)
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield tts_pb2_grpc.TTSServiceStub(channel)
    asyncio.run_coroutine_threadsafe(server.stop(grace=5), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


tricky_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=50),
    st.text(st.sampled_from("😀🎉👍🏽‍♀️\u200d\ufe0f"), max_size=30),
    st.text(st.sampled_from("абвгд中文字符العربيةעבריתहिन्दी ,.!?"), max_size=120),
    st.integers(1, 1500).map(lambda n: "x" * n),
    st.lists(
        st.sampled_from(["Dr.", "3.14", "$5", "e.g.", "...", "--", "[[", "]]", "(", "Hello"])
    ).map(" ".join),
    st.lists(
        st.sampled_from(
            [
                "Hi.",
                "<break/>",
                '<break time="300ms"/>',
                '<say-as interpret-as="characters">',
                "</say-as>",
                '<prosody rate="x-fast">',
                "</prosody>",
                '<phoneme ph="həlˈoʊ">',  # noqa: RUF001
                "</phoneme>",
                "&amp;",
                "<",
                "[[ a ]]",
                "42",
            ]
        ),
        max_size=20,
    ).map(lambda parts: f"<speak>{' '.join(parts)}</speak>"),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=tricky_text)
def test_any_text_ends_with_audio_or_invalid_argument(
    stub: tts_pb2_grpc.TTSServiceStub, text: str
) -> None:
    try:
        response = stub.Synthesize(tts_pb2.TTSRequest(text=text), timeout=CALL_DEADLINE_S)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        assert error.details()
        return
    rate, samples = read_wav(response.audio)
    assert rate == 22050
    assert samples.size > 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=tricky_text)
def test_any_text_streams_with_its_words_or_fails_clearly(
    stub: tts_pb2_grpc.TTSServiceStub, text: str
) -> None:
    request = tts_pb2.TTSRequest(text=text, word_timestamps=True, word_phonemes=True)
    try:
        chunks = list(stub.StreamSynthesize(request, timeout=CALL_DEADLINE_S))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        return
    assert chunks and all(len(c.chunk) % 2 == 0 for c in chunks)
    seconds = sum(len(c.chunk) for c in chunks) / 2 / chunks[0].sample_rate
    words = [word for chunk in chunks for word in chunk.words]
    for before, after in itertools.pairwise(words):
        assert before.end <= after.start + 1e-6, (before, after)
    assert all(0 <= w.start < w.end <= seconds + 1e-6 and w.word and w.phonemes for w in words)


@settings(max_examples=300, deadline=None)
@given(text=tricky_text)
def test_the_front_end_places_any_text_s_words_inside_their_utterance(
    engines: dict[str, Any], text: str
) -> None:
    for utterance in engines["joe"].utterances(clean_text(text), words=True):
        stops = [0] + [span.stop_id for span in utterance.words]
        for span, previous_stop in zip(utterance.words, stops, strict=False):
            assert previous_stop <= span.first_id < span.stop_id < len(utterance.phoneme_ids)
