"""Long texts in pieces: cut at sentences, synthesized in parallel, delivered in order.

One pod speaks one request's sentences one after another, so a long text
keeps one pod busy while the others idle. Here the text is cut at sentence
boundaries into pieces of about `piece_chars`, each piece becomes its own
synthesis call (so the router's picker spreads them over pods), at most
`parallel` of them run at once per request (one caller cannot take the whole
fleet), and their audio is handed on strictly in text order: the piece being
delivered streams live, later ones are buffered until their turn. Pieces are
whole sentences, so each piece's audio is what a pod would have made for
those sentences within the whole text.

Nothing here knows about gRPC channels or pods: the caller passes a function
that synthesizes one piece (the router's forwarder through its picker, or
the job worker calling the router), which keeps this module a pure
scheduling unit shared by both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from ttsfleet.proto import tts_pb2
from ttsfleet.ssml import is_ssml
from ttsfleet.text import split_text

TextFormat = tts_pb2.TextFormat

Piece = TypeVar("Piece")
Chunk = TypeVar("Chunk")


@dataclass(frozen=True)
class FanoutPolicy:
    """When and how a request is split; the router's settings carry one."""

    # Texts shorter than this go to one pod whole: splitting buys nothing.
    min_chars: int = 600
    # Target size of a piece; a piece never exceeds max_chars.
    piece_chars: int = 400
    max_chars: int = 1000
    # Pieces of one request synthesized at the same time.
    parallel: int = 4

    def pieces(
        self, text: str, text_format: TextFormat = tts_pb2.TEXT_FORMAT_UNSPECIFIED
    ) -> list[str]:
        """The text's pieces, or the text alone when it is short or SSML (whose markup
        spans sentences: it goes to one pod whole)."""
        if len(text) < self.min_chars or is_ssml(text, text_format):
            return [text]
        return split_text(text, self.piece_chars, self.max_chars)


class _Piece:
    """One piece's audio as it arrives; `_END` in the queue marks its end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


_END = object()


async def fan_out(
    pieces: Sequence[Piece],
    synthesize: Callable[[Piece], AsyncIterator[Chunk]],
    parallel: int = 4,
    ahead: int | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Yields every piece's chunks in piece order while up to `parallel` pieces synthesize.

    A piece is whatever `synthesize` takes: the text, or (index, text) for a
    caller that names its pieces. At most `ahead` pieces past the one being
    delivered are started (default 2 x parallel), which bounds the audio held
    in memory. The first failure of any piece cancels the rest and is raised
    here at once. A consumer that leaves (cancelled, or closing the generator)
    cancels every started piece before this returns.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    ahead = max(ahead if ahead is not None else 2 * parallel, parallel)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(parallel)
    failure: asyncio.Future[None] = loop.create_future()
    states = [_Piece() for _ in pieces]

    def fail(error: Exception) -> None:
        if not failure.done():
            failure.set_exception(error)

    async def run(piece: Piece, state: _Piece) -> None:
        try:
            async with slots:
                async for chunk in synthesize(piece):
                    state.queue.put_nowait(chunk)
            state.queue.put_nowait(_END)
        except Exception as error:
            fail(error)
        except asyncio.CancelledError:
            # Ours when the consumer leaves; otherwise the piece stopped on its own.
            fail(RuntimeError("a piece's synthesis was cancelled before it finished"))
            raise

    started = 0
    try:
        for index, state in enumerate(states):
            while started < len(states) and started <= index + ahead:
                states[started].task = loop.create_task(run(pieces[started], states[started]))
                started += 1
            while (item := await _next(state.queue, failure)) is not _END:
                yield cast(Chunk, item)
    finally:
        tasks = [s.task for s in states if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failure.done():
            failure.exception()  # retrieved: raised above, or moot once the consumer left


async def _next(queue: asyncio.Queue[object], failure: asyncio.Future[None]) -> object:
    """The queue's next item, or the first piece failure raised as soon as it happens."""
    if not queue.empty():
        return queue.get_nowait()
    getting = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait((getting, failure), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getting
    if getting.done() and not getting.cancelled():
        return getting.result()
    return failure.result()  # raises the piece's error
