"""SSML and lexicons with the real voice: breaks are silence, say-as spells, lexicons change sounds."""

# ruff: noqa: RUF001, RUF003 (IPA letters look like Latin ones on purpose)

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import grpc
import numpy as np
import pytest
from audio_checks import pcm16
from voices import JOE_QUIET, load_engines, pod_config, running_server

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice

# "tomato" as the British say it; the phonemizer says təmˈeɪɾoʊ.
JOE_LEXICON = replace(JOE_QUIET, name="joe-lexicon", lexicon=(("tomato", "təmˈɑːtoʊ"),))


@pytest.fixture(scope="module")
def lexicon_engines() -> dict[str, Any]:
    return load_engines(JOE_LEXICON)


async def speak(engines: dict[str, Any], voice: str, text: str) -> tuple[Any, Any]:
    """(words, samples) of a timed stream of `text` from a pod of `voice`."""
    voices = {JOE_QUIET.name: JOE_QUIET, JOE_LEXICON.name: JOE_LEXICON}
    async with (
        running_server(pod_config(voices[voice]), {voice: engines[voice]}) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        request = tts_pb2.TTSRequest(text=text, word_timestamps=True, word_phonemes=True)
        chunks = [c async for c in tts_pb2_grpc.TTSServiceStub(channel).StreamSynthesize(request)]
    words = [word for chunk in chunks for word in chunk.words]
    for before, after in itertools.pairwise(words):
        assert before.end <= after.start + 1e-6
    return words, pcm16(b"".join(chunk.chunk for chunk in chunks))


def gap(words: Any, first: str, second: str) -> float:
    by_word = {word.word: word for word in words}
    return float(by_word[second].start - by_word[first].end)


async def test_a_break_is_silence_of_its_length(engines: dict[str, Any]) -> None:
    plain, _ = await speak(engines, "joe-quiet", "<speak>One. Two.</speak>")
    paused, samples = await speak(
        engines, "joe-quiet", '<speak>One. <break time="1500ms"/> Two.</speak>'
    )
    added = gap(paused, "One", "Two") - gap(plain, "One", "Two")
    assert added == pytest.approx(1.5, abs=0.01)
    one, two = paused
    silence = samples[int(one.end * 22050) + 2205 : int(two.start * 22050) - 2205]
    assert silence.size > 1.4 * 22050 and np.abs(silence).max() < 200


async def test_say_as_spells_and_reads_digits(engines: dict[str, Any]) -> None:
    words, _ = await speak(
        engines,
        "joe-quiet",
        '<speak><say-as interpret-as="characters">abc</say-as> '
        '<say-as interpret-as="digits">42</say-as></speak>',
    )
    assert [(w.word, w.phonemes) for w in words] == [
        ("a-b-c", "ˈeɪbˈiːsˈiː"),
        ("4", "fˈɔːɹ"),
        ("2", "tˈuː"),
    ]


async def test_phonemes_prosody_and_lexicon_change_what_is_said(
    engines: dict[str, Any], lexicon_engines: dict[str, Any]
) -> None:
    said, _ = await speak(engines, "joe-quiet", "I like tomato soup.")
    assert said[2].phonemes == "təmˈeɪɾoʊ"
    lexicon, _ = await speak(lexicon_engines, "joe-lexicon", "I like Tomato soup.")
    assert [(w.word, w.phonemes) for w in lexicon][2] == ("Tomato", "təmˈɑːtoʊ")
    given, _ = await speak(
        engines,
        "joe-quiet",
        '<speak>I like <phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme> soup.</speak>',
    )
    assert [w.phonemes for w in given] == [w.phonemes for w in lexicon]
    slow, slow_samples = await speak(
        engines, "joe-quiet", '<speak><prosody rate="x-slow">I like tomato soup.</prosody></speak>'
    )
    _, plain_samples = await speak(engines, "joe-quiet", "I like tomato soup.")
    assert slow_samples.size > 1.6 * plain_samples.size
    assert slow[-1].end == pytest.approx(slow_samples.size / 22050, abs=0.5)


async def test_malformed_ssml_names_line_and_column(engines: dict[str, Any]) -> None:
    async with (
        running_server(pod_config(JOE_QUIET), {"joe-quiet": engines["joe-quiet"]}) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Synthesize(tts_pb2.TTSRequest(text="<speak>\n  Hello <b>there</speak>"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "line 2, column" in (refused.value.details() or "")
        plain = await stub.Synthesize(
            tts_pb2.TTSRequest(text="<speak>not markup", text_format=tts_pb2.TEXT_FORMAT_PLAIN)
        )
        assert plain.audio_seconds > 0.5, "plain text may start with <speak"
