"""The pod's scheduler driven directly, without gRPC: batching, turn-taking, failures, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
import numpy as np
import pytest
from timed_fleet import TimedEngine

from ttsfleet.audio import Audio
from ttsfleet.errors import TTSError
from ttsfleet.inference.engine import BatchItem, Utterance
from ttsfleet.inference.scheduler import DONE, Scheduler, Synthesis


class RecordingEngine(TimedEngine):
    """A timed engine that remembers every batch (the first phoneme id of each item)."""

    def __init__(self, max_batch_size: int = 8, fail_on: int | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size)
        self.batches: list[list[int]] = []
        self._fail_on = fail_on

    def run_batch(self, items: Sequence[BatchItem]) -> Iterator[list[Audio]]:
        ids = [utterance.phoneme_ids[0] for utterance, _ in items]
        self.batches.append(ids)
        if self._fail_on in ids:
            raise RuntimeError("the model broke")
        # Each item's audio says which utterance it is, so order can be checked.
        yield [np.full(4, float(i), np.float32) for i in ids]


def request(engine: TimedEngine, first: int, count: int) -> Synthesis:
    """A request of `count` utterances numbered from `first`."""
    utterances = [Utterance((first + i,)) for i in range(count)]
    return Synthesis(engine, utterances, engine.default_params(1.0))


async def audio_of(work: Synthesis) -> list[float] | BaseException:
    """The first sample of each piece the request got, or the error it got."""
    heard = []
    while (piece := await work.output.get()) is not DONE:
        if isinstance(piece, BaseException):
            return piece
        heard.append(float(piece[0]))
    return heard


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[Scheduler]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_requests_that_arrive_together_are_batched_up_to_the_limit() -> None:
    engine = RecordingEngine()
    scheduler = Scheduler(queue_limit=16, max_batch_size=3, max_wait_s=0.05)
    works = [request(engine, 100 * n, 1) for n in range(5)]
    async with running(scheduler):
        for work in works:
            scheduler.submit(work)
        results = await asyncio.wait_for(asyncio.gather(*map(audio_of, works)), 10)
    assert results == [[100.0 * n] for n in range(5)]
    assert [len(batch) for batch in engine.batches] == [3, 2]


async def test_the_engines_own_cap_bounds_a_batch() -> None:
    engine = RecordingEngine(max_batch_size=2)
    scheduler = Scheduler(queue_limit=16, max_batch_size=8, max_wait_s=0.05)
    works = [request(engine, 100 * n, 1) for n in range(4)]
    async with running(scheduler):
        for work in works:
            scheduler.submit(work)
        await asyncio.wait_for(asyncio.gather(*map(audio_of, works)), 10)
    assert max(len(batch) for batch in engine.batches) == 2


async def test_active_requests_take_turns_so_a_short_one_finishes_first() -> None:
    """One long request and one short one: the short one is not kept for the long one's tail."""
    engine = RecordingEngine(max_batch_size=1)
    scheduler = Scheduler(queue_limit=16, max_batch_size=2, max_wait_s=0.05)
    long, short = request(engine, 0, 6), request(engine, 100, 2)
    async with running(scheduler):
        scheduler.submit(long)
        scheduler.submit(short)
        heard_long, heard_short = await asyncio.wait_for(
            asyncio.gather(audio_of(long), audio_of(short)), 10
        )
    assert heard_long == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert heard_short == [100.0, 101.0]
    order = [batch[0] for batch in engine.batches]
    assert order.index(101) < order.index(5)  # the short one ended before the long one


async def test_a_failing_batch_fails_its_requests_and_the_scheduler_goes_on() -> None:
    engine = RecordingEngine(max_batch_size=2, fail_on=100)
    scheduler = Scheduler(queue_limit=16, max_batch_size=2, max_wait_s=0.05)
    good, doomed = request(engine, 0, 1), request(engine, 100, 1)
    async with running(scheduler):
        scheduler.submit(good)
        scheduler.submit(doomed)
        first = await asyncio.wait_for(asyncio.gather(audio_of(good), audio_of(doomed)), 10)
        later = request(engine, 200, 2)
        scheduler.submit(later)
        after = await asyncio.wait_for(audio_of(later), 10)
    assert all(isinstance(result, RuntimeError) for result in first)
    assert after == [200.0, 201.0]
    assert scheduler.idle


async def test_a_full_queue_and_a_draining_pod_refuse_at_once() -> None:
    engine = RecordingEngine()
    scheduler = Scheduler(queue_limit=2, max_batch_size=2, max_wait_s=0.0)
    scheduler.submit(request(engine, 0, 1))
    scheduler.submit(request(engine, 1, 1))
    with pytest.raises(TTSError) as full:
        scheduler.submit(request(engine, 2, 1))
    assert full.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert scheduler.load.queue_depth == 2
    scheduler.drain()
    with pytest.raises(TTSError) as draining:
        scheduler.submit(request(engine, 3, 1))
    assert draining.value.code is grpc.StatusCode.UNAVAILABLE


async def test_a_cancelled_request_leaves_the_queue_and_gets_no_more_work() -> None:
    engine = RecordingEngine(max_batch_size=1)
    scheduler = Scheduler(queue_limit=16, max_batch_size=1, max_wait_s=0.0)
    kept, dropped = request(engine, 0, 3), request(engine, 100, 3)
    scheduler.submit(kept)
    scheduler.submit(dropped)
    scheduler.cancel(dropped)
    assert scheduler.load.queue_depth == 1
    async with running(scheduler):
        assert await asyncio.wait_for(audio_of(kept), 10) == [0.0, 1.0, 2.0]
    assert all(batch[0] < 100 for batch in engine.batches)
