"""The pod's scheduler driven directly, without gRPC: continuous batching, turns, failures."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import pytest
from timed_fleet import TimedEngine, TimedStream, until

from ttsfleet.audio import Audio
from ttsfleet.errors import TTSError
from ttsfleet.inference.engine import Stream, Utterance
from ttsfleet.inference.scheduler import DONE, Scheduler, Synthesis
from ttsfleet.inference.waiting_room import WaitingRoom
from ttsfleet.wire import Priority

BATCH = Priority.BATCH


class RecordingEngine(TimedEngine):
    """A timed engine that logs every step: the first phoneme id of each stream in it.

    Each piece says which utterance it is and which of its windows, so order
    can be checked: utterance id + window / 100.
    """

    def __init__(
        self,
        max_batch_size: int = 8,
        fail_on: int | None = None,
        windows: int = 1,
        step_seconds: float = 0.0,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, windows=windows, step_seconds=step_seconds)
        self.batches: list[list[int]] = []
        self.log: list[tuple[str, list[int]]] = []  # ("start" | "end", ids)
        self._fail_on = fail_on
        self._lock = threading.Lock()

    def step(self, streams: Sequence[Stream]) -> list[Audio]:
        timed = [s for s in streams if isinstance(s, TimedStream)]
        ids = [s.utterance.phoneme_ids[0] for s in timed]
        with self._lock:
            self.batches.append(ids)
            self.log.append(("start", ids))
        if self._fail_on in ids:
            raise RuntimeError("the model broke")
        windows = [self.windows - s.windows_left for s in timed]
        pieces = super().step(streams)
        with self._lock:
            self.log.append(("end", ids))
        return [
            np.full(piece.size, i + w / 100, np.float32)
            for piece, i, w in zip(pieces, ids, windows, strict=True)
        ]


def request(
    engine: TimedEngine,
    first: int,
    count: int,
    priority: Priority = Priority.INTERACTIVE,
    tenant: str = "",
) -> Synthesis:
    """A request of `count` utterances numbered from `first`."""
    utterances = [Utterance((first + i,)) for i in range(count)]
    return Synthesis(
        engine, utterances, engine.default_params(1.0), priority=priority, tenant=tenant
    )


async def audio_of(work: Synthesis) -> list[float] | BaseException:
    """The first sample of each piece the request got, or the error it got."""
    heard = []
    while (piece := await work.output.get()) is not DONE:
        if isinstance(piece, BaseException):
            return piece
        heard.append(round(float(piece[0]), 4))
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


async def hear(scheduler: Scheduler, *works: Synthesis) -> list[list[float] | BaseException]:
    """Submits requests that arrive together and runs the scheduler until each is answered."""
    async with running(scheduler):
        for work in works:
            scheduler.submit(work)
        return await asyncio.wait_for(asyncio.gather(*map(audio_of, works)), 10)


async def test_requests_that_arrive_together_are_batched_up_to_the_limit() -> None:
    engine = RecordingEngine()
    scheduler = Scheduler(queue_limit=16, max_batch_size=3, max_wait_s=0.05)
    results = await hear(scheduler, *[request(engine, 100 * n, 1) for n in range(5)])
    assert results == [[100.0 * n] for n in range(5)]
    assert [len(batch) for batch in engine.batches] == [3, 2]


async def test_the_engines_own_cap_bounds_a_batch() -> None:
    engine = RecordingEngine(max_batch_size=2)
    scheduler = Scheduler(queue_limit=16, max_batch_size=8, max_wait_s=0.05)
    await hear(scheduler, *[request(engine, 100 * n, 3) for n in range(4)])
    assert max(len(batch) for batch in engine.batches) == 2


async def test_a_step_is_one_window_and_streams_join_and_leave_between_steps() -> None:
    """Two requests of three-window utterances: pieces come window by window, in order."""
    engine = RecordingEngine(windows=3)
    scheduler = Scheduler(queue_limit=16, max_batch_size=4, max_wait_s=0.0)
    heard = await hear(scheduler, request(engine, 0, 2), request(engine, 100, 1))
    assert heard == [[0.0, 0.01, 0.02, 1.0, 1.01, 1.02], [100.0, 100.01, 100.02]]
    # After the first windows, later steps hold both requests until the short one ends.
    assert [0, 100] in engine.batches[1:]
    assert engine.batches[-3:] == [[1], [1], [1]]


async def test_active_requests_take_turns_so_a_short_one_finishes_first() -> None:
    """One long request and one short one: the short one is not kept for the long one's tail."""
    engine = RecordingEngine(max_batch_size=1)
    scheduler = Scheduler(queue_limit=16, max_batch_size=2, max_wait_s=0.05)
    heard_long, heard_short = await hear(scheduler, request(engine, 0, 6), request(engine, 100, 3))
    assert heard_long == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert heard_short == [100.0, 101.0, 102.0]
    order = [batch[0] for batch in engine.batches]
    assert order.index(102) < order.index(5)  # the short one ended before the long one


async def test_a_newcomer_gets_its_first_window_within_one_step() -> None:
    """Three long streams at full speed; a newcomer is never queued behind their windows.

    Steps take a fixed time, so the log of step starts and ends shows what
    ran while the newcomer waited: at most the one step already running.
    """
    engine = RecordingEngine(windows=40, step_seconds=0.05)
    scheduler = Scheduler(queue_limit=16, max_batch_size=8, max_wait_s=0.0)
    longs = [request(engine, 100 * n, 3) for n in range(1, 4)]
    newcomer = request(engine, 0, 1)
    async with running(scheduler):
        for work in longs:
            scheduler.submit(work)
        listeners = [asyncio.create_task(audio_of(work)) for work in longs]
        await until(lambda: len(engine.log) >= 6)  # the long ones are into their windows
        submitted_at = len(engine.log)
        scheduler.submit(newcomer)
        first = await asyncio.wait_for(newcomer.output.get(), 10)
        heard_at = len(engine.log)
        for listener in listeners:
            listener.cancel()
    assert isinstance(first, np.ndarray) and first[0] == 0.0
    since = engine.log[submitted_at:heard_at]
    newcomer_starts = since.index(("start", [0]))
    assert ("end", [0]) in since
    # Before the newcomer's step began, at most the others' step that was
    # already running when it arrived ended; it waited for nothing else.
    assert sum(1 for kind, _ in since[:newcomer_starts] if kind == "end") <= 1


async def test_the_load_counts_requests_and_queued_audio_seconds() -> None:
    engine = RecordingEngine(windows=2)
    scheduler = Scheduler(queue_limit=16, max_batch_size=1, max_wait_s=0.0)
    works = [request(engine, 0, 3), request(engine, 100, 2)]
    for work in works:
        scheduler.submit(work)
    chunk_seconds = 320 / 16000
    assert scheduler.load.queue_depth == 2 and scheduler.load.in_flight == 0
    assert scheduler.load.queued_audio_seconds == pytest.approx(5 * 2 * chunk_seconds)
    async with running(scheduler):
        await asyncio.wait_for(works[0].output.get(), 10)
        load = scheduler.load
        assert (load.queue_depth, load.in_flight) == (1, 1)
        assert load.queued_audio_seconds == pytest.approx(9 * chunk_seconds)
        await asyncio.wait_for(asyncio.gather(*map(audio_of, works)), 10)
    assert scheduler.load.queued_audio_seconds == 0


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


async def test_an_interactive_request_goes_ahead_of_queued_batch_work() -> None:
    """A pod busy with batch work, more waiting: a person's request is heard before them."""
    engine = RecordingEngine(max_batch_size=1, windows=2, step_seconds=0.02)
    scheduler = Scheduler(queue_limit=16, max_batch_size=1, max_wait_s=0.0)
    batch = [request(engine, 100 * n, 2, BATCH) for n in range(1, 4)]
    interactive = request(engine, 0, 1)
    async with running(scheduler):
        for work in batch:
            scheduler.submit(work)
        listeners = [asyncio.create_task(audio_of(work)) for work in batch]
        await until(lambda: len(engine.batches) >= 1)  # the first batch request is running
        scheduler.submit(interactive)
        assert await asyncio.wait_for(audio_of(interactive), 10) == [0.0, 0.01]
        await asyncio.wait_for(asyncio.gather(*listeners), 10)
    order = [batch[0] for batch in engine.batches]
    # The two later batch requests had not started when the interactive one ended.
    assert order.index(0) < order.index(200) and order.index(0) < order.index(300)


async def test_batch_work_completes_under_a_steady_interactive_stream() -> None:
    """Interactive work enough for sixty steps, queued ahead: batch still gets one step in four."""
    engine = RecordingEngine(max_batch_size=1, windows=2)
    scheduler = Scheduler(queue_limit=64, max_batch_size=1, max_wait_s=0.0)
    interactive = [request(engine, 10 * n, 1) for n in range(30)]
    batch = request(engine, 1000, 3, BATCH)
    for work in [*interactive, batch]:
        scheduler.submit(work)
    assert (scheduler.load.queue_depth, scheduler.load.batch_queue_depth) == (31, 1)
    async with running(scheduler):
        heard = await asyncio.wait_for(asyncio.gather(*map(audio_of, [batch, *interactive])), 10)
    assert heard[0] == [1000.0, 1000.01, 1001.0, 1001.01, 1002.0, 1002.01]
    order = [batch[0] for batch in engine.batches]
    batch_done = order.index(1002) + 1
    # Its six steps came at least one in four of the second lane's (whose steps
    # alternate with the first lane's), long before the interactive work ran out.
    assert batch_done <= 2 * 4 * 6 <= len(order) - 10


async def test_tenants_of_one_class_take_turns() -> None:
    """Tenant a queues four requests, then tenant b two: the engine takes them a, b, a, b, a, a."""
    engine = RecordingEngine(max_batch_size=1)
    scheduler = Scheduler(queue_limit=16, max_batch_size=1, max_wait_s=0.0)
    works = [request(engine, n, 1, tenant="a") for n in range(4)]
    works += [request(engine, 100 + n, 1, tenant="b") for n in range(2)]
    await hear(scheduler, *works)
    assert [batch[0] for batch in engine.batches] == [0, 100, 1, 101, 2, 3]


async def test_the_load_reports_the_measured_speed() -> None:
    """Steps of 50 ms making 20 ms of audio each: the pod speaks at about 0.4x real time."""
    engine = RecordingEngine(max_batch_size=1, step_seconds=0.05)
    scheduler = Scheduler(queue_limit=16, max_batch_size=1, max_wait_s=0.0)
    assert scheduler.load.audio_seconds_per_second == 0  # not measured yet
    await hear(scheduler, request(engine, 0, 12))
    assert 0.2 < scheduler.load.audio_seconds_per_second <= 0.4


async def test_a_step_is_of_one_class_and_batch_newcomers_do_not_share_a_persons_start() -> None:
    """Batch and interactive requests arriving together are never stepped together."""
    engine = RecordingEngine(max_batch_size=4, windows=2)
    scheduler = Scheduler(queue_limit=16, max_batch_size=8, max_wait_s=0.0)
    batch = [request(engine, 100 * n, 2, BATCH) for n in range(1, 4)]
    await hear(scheduler, *batch, request(engine, 0, 2), request(engine, 10, 2))
    for step in engine.batches:
        assert len({first >= 100 for first in step}) == 1, engine.batches
    assert any(0 in step for step in engine.batches[:2])  # a person's start comes early


def test_the_waiting_room_admits_batch_one_in_four_while_interactive_waits() -> None:
    engine = RecordingEngine()
    room: WaitingRoom[Synthesis] = WaitingRoom(batch_share=4)
    for n in range(8):
        room.add(request(engine, n, 1))
    for n in range(3):
        room.add(request(engine, 100 + n, 1, BATCH))
    order = []
    while (work := room.pop()) is not None:
        order.append(work.utterances[0].phoneme_ids[0])
    assert order == [0, 1, 2, 100, 3, 4, 5, 101, 6, 7, 102]
    room.add(request(engine, 200, 1, BATCH))
    assert room.pop([Priority.INTERACTIVE]) is None and len(room) == 1
