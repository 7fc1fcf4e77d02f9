"""Fan-out as pure scheduling: sentence-aligned pieces, bounded parallelism, strict order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttsfleet.pieces import FanoutPolicy, fan_out
from ttsfleet.text import sentences, split_text


def test_sentences_keep_punctuation_quotes_and_abbreviations() -> None:
    text = 'Hello there. She said "stop!" Then (why?) Mr. Smith left...\nNo stop\n\nLast one'
    assert sentences(text) == [
        "Hello there.",
        'She said "stop!"',
        "Then (why?)",
        "Mr. Smith left...",
        "No stop",
        "Last one",
    ]


def test_pieces_are_whole_sentences_near_the_target_size() -> None:
    text = "Some words in a sentence here. " * 100
    pieces = split_text(text, piece_chars=400, max_chars=1000)
    assert all(p.endswith(".") for p in pieces)
    assert all(abs(len(p) - 400) < 40 for p in pieces[:-1])
    assert " ".join(pieces) == text.strip()


def test_an_overlong_sentence_is_cut_at_spaces_within_max_chars() -> None:
    sentence = "word " * 400 + "end."
    pieces = split_text(sentence, piece_chars=300, max_chars=600)
    assert all(len(p) <= 600 for p in pieces)
    assert " ".join(pieces).split() == sentence.split()


@given(st.text(alphabet=st.sampled_from("ab .!?,\n"), max_size=400))
def test_splitting_loses_no_word(text: str) -> None:
    pieces = split_text(text, piece_chars=20, max_chars=40)
    assert " ".join(pieces).split() == text.split()
    assert all(0 < len(p) <= 40 for p in pieces)


def test_short_texts_are_not_split() -> None:
    policy = FanoutPolicy(min_chars=100)
    assert policy.pieces("One. Two. Three.") == ["One. Two. Three."]
    assert len(policy.pieces("One sentence here. " * 40)) > 1


class Recorder:
    """A fake synthesizer: each piece streams its words after random delays."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.running = 0
        self.most = 0
        self.started: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[str]:
        self.started.append(text)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            for word in text.split():
                await asyncio.sleep(self.rng.random() / 500)
                yield word
        finally:
            self.running -= 1


async def test_chunks_come_in_order_with_bounded_parallelism() -> None:
    pieces = [f"p{i}a p{i}b p{i}c" for i in range(20)]
    recorder = Recorder()
    out = [chunk async for chunk in fan_out(pieces, recorder.synthesize, parallel=3)]
    assert out == " ".join(pieces).split()
    assert recorder.most == 3
    assert recorder.started == pieces, "pieces start in text order"
    assert recorder.running == 0


async def test_lookahead_bounds_how_far_pieces_run_ahead() -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def slow_first(text: str) -> AsyncIterator[str]:
        started.append(text)
        if text == "0":
            await release.wait()
        yield text

    stream = fan_out([str(i) for i in range(10)], slow_first, parallel=2, ahead=3)
    first = asyncio.ensure_future(anext(stream))
    for _ in range(50):
        await asyncio.sleep(0)
    assert started == ["0", "1", "2", "3"], "the piece being delivered plus three ahead"
    release.set()
    assert await first == "0"
    assert [c async for c in stream] == [str(i) for i in range(1, 10)]


async def test_a_failing_piece_fails_the_whole_stream_and_stops_the_rest() -> None:
    cancelled: list[str] = []

    async def synthesize(text: str) -> AsyncIterator[str]:
        try:
            if text == "2":
                raise RuntimeError("pod broke")
            yield text
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(text)
            raise

    with pytest.raises(RuntimeError, match="pod broke"):
        async for _ in fan_out(["0", "1", "2", "3"], synthesize, parallel=4):
            pass
    assert "0" in cancelled and "1" in cancelled


async def test_a_consumer_leaving_cancels_every_piece() -> None:
    recorder = Recorder()
    stream = fan_out([f"w{i} x y z" for i in range(8)], recorder.synthesize, parallel=4)
    assert await anext(stream) == "w0"
    await stream.aclose()
    assert recorder.running == 0


async def test_a_piece_cancelled_on_its_own_fails_the_stream_instead_of_hanging() -> None:
    async def synthesize(text: str) -> AsyncIterator[str]:
        if text == "1":
            raise asyncio.CancelledError
        yield text

    with pytest.raises(RuntimeError, match="cancelled before it finished"):
        _ = [c async for c in fan_out(["0", "1", "2"], synthesize, parallel=2)]
