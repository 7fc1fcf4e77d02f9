"""The pod's bounded queue and the workers that batch it through the engines, window by window.

A request becomes a Synthesis: its utterances (sentences) and where its audio
goes. They wait in a bounded FIFO (the queue depth everyone reports) and are
then admitted into an active set of at most `max_batch_size` (the in-flight
count). The unit of work is one engine step: one decoder window of each of a
batch of streams. Batches are re-formed at every step, so requests join and
leave at window boundaries (continuous batching), never at sentence ends.

Two lanes, one engine thread each, share the active set:
- the first lane starts interactive newcomers: their latents and their small
  first window, batched together, so a newcomer's first audio never waits
  for other requests' later windows (nor their next sentences' latents);
- the second lane runs every started request's next window (preparing its
  next sentence when one ends), up to `max_batch_size` per step, the
  requests taking turns when more are started than a step takes; it also
  starts batch newcomers (nobody waits on a batch request's first audio).
A request is in exactly one lane: the second takes it after its first step.

Priorities (see `waiting_room`): interactive requests are admitted before
batch ones, and a step is of one class, interactive first, except that
batch work gets at least one step in every `batch_share`. Interactive
requests are admitted while fewer than `max_batch_size` interactive ones are
in flight, however many batch ones are (those then wait their turn at window
boundaries: a burst of jobs never holds a person's request in the queue);
batch requests only while the active set has room, or when none is in flight.
When an interactive newcomer is about to be started, the second lane holds
back one step of batch work, so the newcomer's first window does not share
the cores with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from ttsfleet.audio import Audio
from ttsfleet.errors import TTSError
from ttsfleet.inference.engine import (
    Stream,
    SynthesisParams,
    Utterance,
    VoiceEngine,
    batch_item,
)
from ttsfleet.inference.speedometer import Speedometer
from ttsfleet.inference.waiting_room import WaitingRoom
from ttsfleet.inference.words import WordTime, word_times
from ttsfleet.wire import Priority

# A synthesis's output queue carries audio pieces, then one of these. With
# word timings asked for, an utterance's word times come before its audio.
DONE = None
Output = Audio | tuple[WordTime, ...] | BaseException | None
# Added to the second lane thread's niceness: at 10, Linux gives a contending
# thread of niceness 0 about nine tenths of a shared core.
_REST_LANE_NICENESS = 10
# Batch work gets at least one in this many admissions and steps while interactive work waits.
BATCH_SHARE = 4


@dataclass(eq=False)
class Synthesis:
    """One request's work: its utterances, its settings, and the queue its audio goes to."""

    engine: VoiceEngine
    utterances: list[Utterance]
    params: SynthesisParams
    priority: Priority = Priority.INTERACTIVE
    # Whose request it is: requests of one class are admitted tenant by tenant in turn.
    tenant: str = ""
    output: asyncio.Queue[Output] = field(default_factory=asyncio.Queue)
    # When it was queued (monotonic): the wait until admission is a metric.
    queued_at: float = field(default_factory=time.monotonic)
    next_utterance: int = 0
    # The utterance being decoded; None until the next one is prepared.
    stream: Stream | None = None
    # Whether its first step has run (its first audio is out).
    started: bool = False
    # Audio not yet made, in seconds: predicted at first, worked off as pieces come.
    pending_seconds: float = field(init=False)

    def __post_init__(self) -> None:
        self.pending_seconds = sum(
            self.engine.estimate_seconds(utterance, self.params) for utterance in self.utterances
        )

    @property
    def finished(self) -> bool:
        return self.next_utterance >= len(self.utterances)


@dataclass(frozen=True)
class Load:
    """The numbers the router and the autoscaler act on."""

    queue_depth: int
    in_flight: int
    queue_capacity: int
    draining: bool
    queued_audio_seconds: float
    # Of queue_depth, the batch requests.
    batch_queue_depth: int
    audio_seconds_per_second: float


class Scheduler:
    """Owns the queue and the worker lanes of one pod."""

    def __init__(
        self,
        queue_limit: int,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
        on_admit: Callable[[Synthesis], None] = lambda work: None,
        batch_share: int = BATCH_SHARE,
    ) -> None:
        self._limit = queue_limit
        self._max_batch = max_batch_size
        self._max_wait = max_wait_s
        self._on_batch = on_batch
        self._on_admit = on_admit
        self._batch_share = batch_share
        self._waiting: WaitingRoom[Synthesis] = WaitingRoom(batch_share)
        self._active: list[Synthesis] = []
        # Per lane: steps in a row that passed over ready batch work.
        self._batch_passed_over = [0, 0]
        self._speed = Speedometer()
        # One event per lane (newcomers, started), set whenever it may have work.
        self._wakeups = (asyncio.Event(), asyncio.Event())
        # Set and replaced on every change: waiters hold the event of their moment.
        self._changed = asyncio.Event()
        self._draining = False
        # When a step last ended (or work arrived at an idle pod): liveness reads it.
        self._progress_at = time.monotonic()
        # One thread per lane: an engine already uses every core it is given per
        # step, and a lane's steps must run in order. The second lane's thread
        # (and the threads it starts) run at a lower OS priority, so that when
        # both lanes want the same cores, a newcomer's start gets them.
        self._executors = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine-first"),
            concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="engine-rest", initializer=_lower_priority
            ),
        )

    def stalled_for(self) -> float:
        """Seconds the engine has had work and finished no step (0 when idle)."""
        return 0.0 if self.idle else time.monotonic() - self._progress_at

    @property
    def load(self) -> Load:
        return Load(
            queue_depth=len(self._waiting),
            in_flight=len(self._active),
            queue_capacity=self._limit,
            draining=self._draining,
            queued_audio_seconds=sum(
                work.pending_seconds for work in (*self._waiting, *self._active)
            ),
            batch_queue_depth=self._waiting.count(Priority.BATCH),
            audio_seconds_per_second=self._speed.audio_seconds_per_second,
        )

    def check_room(self) -> None:
        """Refuses now if a request could not be queued: asked before any work on it is done."""
        if self._draining:
            raise TTSError(grpc.StatusCode.UNAVAILABLE, "this pod is shutting down")
        if len(self._waiting) >= self._limit:
            raise TTSError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"queue full ({self._limit} requests waiting)"
            )

    def submit(self, synthesis: Synthesis) -> None:
        """Queues a request, or refuses it at once when the queue is full or the pod drains."""
        self.check_room()
        if self.idle:
            self._progress_at = time.monotonic()
        synthesis.queued_at = time.monotonic()
        self._waiting.add(synthesis)
        self._wake()
        self._notify()

    def cancel(self, synthesis: Synthesis) -> None:
        """Forgets a synthesis whose caller has gone away; its remaining work is skipped."""
        self._waiting.remove(synthesis)
        with contextlib.suppress(ValueError):
            self._active.remove(synthesis)
        self._wake()  # room for a waiting request
        self._notify()

    def drain(self) -> None:
        self._draining = True
        self._notify()

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._active

    async def wait_for_change(self, seconds: float) -> None:
        """Returns when the load changed or after `seconds`, whichever is first."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        for wakeup in self._wakeups:
            wakeup.set()

    async def run(self) -> None:
        """Both lanes; runs until cancelled."""
        try:
            await asyncio.gather(self._lane(newcomers=True), self._lane(newcomers=False))
        finally:
            for executor in self._executors:
                executor.shutdown(wait=False, cancel_futures=True)

    async def _lane(self, newcomers: bool) -> None:
        lane = 0 if newcomers else 1
        wakeup = self._wakeups[lane]
        held_back = False
        while True:
            self._admit()
            batch = self._pick(newcomers)
            if not batch:
                wakeup.clear()
                await wakeup.wait()
                continue
            if newcomers:
                batch = await self._gather(batch)
            elif not held_back and self._yields_to_newcomer(batch):
                held_back = True
                wakeup.clear()
                await wakeup.wait()  # until the first lane's step ends (or other news)
                continue
            held_back = False
            self._count_turn(lane, batch)
            await self._step(batch, self._executors[lane])

    def _open_classes(self) -> list[Priority]:
        """The classes that may be admitted now (see the module's docstring)."""
        interactive = sum(1 for work in self._active if work.priority is Priority.INTERACTIVE)
        open_classes = []
        if interactive < self._max_batch:
            open_classes.append(Priority.INTERACTIVE)
        if len(self._active) < self._max_batch or interactive == len(self._active):
            open_classes.append(Priority.BATCH)
        return open_classes

    def _admit(self) -> None:
        admitted = False
        while (work := self._waiting.pop(self._open_classes())) is not None:
            self._active.append(work)
            self._on_admit(work)
            admitted = True
        if admitted:
            self._notify()

    def _yields_to_newcomer(self, batch: list[Synthesis]) -> bool:
        """Whether a step of batch work only should wait while an interactive newcomer starts."""
        return all(work.priority is Priority.BATCH for work in batch) and any(
            map(_starts_first, self._active)
        )

    def _count_turn(self, lane: int, batch: list[Synthesis]) -> None:
        """Counts the lane's steps that passed over ready batch work (see `_pick`)."""
        newcomers = lane == 0
        if any(work.priority is Priority.BATCH for work in batch):
            self._batch_passed_over[lane] = 0
        elif any(
            work.priority is Priority.BATCH and _starts_first(work) == newcomers
            for work in self._active
        ):
            self._batch_passed_over[lane] += 1

    def _pick(self, newcomers: bool) -> list[Synthesis]:
        """The lane's next batch: requests of one voice and one class, up to the batch size.

        Interactive requests, or batch ones when batch work has been passed
        over `batch_share - 1` steps in a row (or is all there is); in turn order.
        """
        ready = [work for work in self._active if _starts_first(work) == newcomers]
        if not ready:
            return []
        batch_first = self._batch_passed_over[0 if newcomers else 1] >= self._batch_share - 1
        ready.sort(key=lambda work: (work.priority is Priority.BATCH) != batch_first)
        engine, priority = ready[0].engine, ready[0].priority
        same = [work for work in ready if work.engine is engine and work.priority is priority]
        return same[: self._batch_limit(engine)]

    def _batch_limit(self, engine: VoiceEngine) -> int:
        return min(engine.max_batch_size, self._max_batch)

    async def _gather(self, batch: list[Synthesis]) -> list[Synthesis]:
        """Waits up to max_wait for more newcomers while the batch could still grow."""
        deadline = time.monotonic() + self._max_wait
        wakeup = self._wakeups[0]
        limit = self._batch_limit(batch[0].engine)
        while len(batch) < limit and (remaining := deadline - time.monotonic()) > 0:
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)
            self._admit()
            batch = self._pick(newcomers=True) or batch
        return batch

    async def _step(
        self, batch: list[Synthesis], executor: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        self._on_batch(len(batch))
        fresh = {work for work in batch if work.stream is None}
        loop = asyncio.get_running_loop()
        self._speed.step_started()
        try:
            results = await loop.run_in_executor(executor, _advance, batch)
        except Exception as error:  # the engine failed: every request in the batch learns why
            self._speed.step_ended(0.0)
            self._progress_at = time.monotonic()
            for synthesis in batch:
                synthesis.output.put_nowait(error)
                self.cancel(synthesis)
            return
        self._progress_at = time.monotonic()
        rate = batch[0].engine.info.sample_rate
        self._speed.step_ended(sum(piece.size for _, piece in results) / rate)
        for synthesis, (stream, piece) in zip(batch, results, strict=True):
            if synthesis not in self._active:
                continue  # cancelled during the step
            synthesis.started = True
            utterance = synthesis.utterances[synthesis.next_utterance]
            if synthesis in fresh:
                _pause(synthesis, utterance.pause_before, rate)
                if utterance.words and stream.id_samples is not None:
                    synthesis.output.put_nowait(word_times(utterance.words, stream.id_samples))
            if piece.size:
                synthesis.output.put_nowait(piece)
                synthesis.pending_seconds = max(synthesis.pending_seconds - piece.size / rate, 0)
            if stream.done:
                _pause(synthesis, utterance.pause_after, rate)
                synthesis.stream = None
                synthesis.next_utterance += 1
            if synthesis.finished:
                synthesis.output.put_nowait(DONE)
                self._active.remove(synthesis)
        # Served requests go to the back, so that requests take turns.
        served = set(batch)
        self._active.sort(key=lambda work: work in served)
        self._wake()
        self._notify()


def _pause(synthesis: Synthesis, seconds: float, rate: int) -> None:
    """Silence (an SSML break) into the synthesis's audio."""
    if seconds > 0:
        synthesis.output.put_nowait(np.zeros(round(seconds * rate), np.float32))
        synthesis.pending_seconds = max(synthesis.pending_seconds - seconds, 0)


def _starts_first(work: Synthesis) -> bool:
    """Whether the request's next step is in the first lane: an interactive newcomer's."""
    return not work.started and work.priority is Priority.INTERACTIVE


def _lower_priority() -> None:
    """Makes the calling thread yield the CPU to the pod's other threads when they contend."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _REST_LANE_NICENESS)


def _advance(batch: list[Synthesis]) -> list[tuple[Stream, Audio]]:
    """On the lane's thread: prepares the batch's new utterances, then runs one step of all.

    Returns each request's stream with the piece it made.
    """
    engine = batch[0].engine
    fresh = [work for work in batch if work.stream is None]
    prepared = iter(
        engine.prepare(
            [batch_item(work.utterances[work.next_utterance], work.params) for work in fresh]
        )
        if fresh
        else ()
    )
    streams = []
    for work in batch:
        if work.stream is None:
            work.stream = next(prepared)
        streams.append(work.stream)
    return list(zip(streams, engine.step(streams), strict=True))
