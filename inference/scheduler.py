"""The pod's bounded queue and the worker that batches it through the engines.

A request becomes a Job: its utterances (sentences) and where its audio goes.
Jobs wait in a bounded FIFO (the queue depth everyone reports) and are then
admitted into a small active set (the in-flight count). Each worker step takes
the next utterance of up to `max_batch_size` active jobs of one voice, runs
them through the engine as one batch, and hands every job its audio as soon
as the engine yields it. Active jobs take turns utterance by utterance, so a
short request is not stuck behind a long one's remaining sentences.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ttsfleet.inference.engine import Audio, SynthesisParams, Utterance, VoiceEngine

# A job's output queue carries audio pieces, then one of these.
DONE = None


class QueueFull(Exception):
    """The queue is at its limit: the caller is told at once, never kept waiting."""


class Draining(Exception):
    """The pod is shutting down and accepts no new work."""


@dataclass(eq=False)
class Job:
    engine: VoiceEngine
    utterances: list[Utterance]
    params: SynthesisParams
    output: asyncio.Queue[Audio | BaseException | None] = field(default_factory=asyncio.Queue)
    next_utterance: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.next_utterance >= len(self.utterances)


@dataclass(frozen=True)
class Load:
    """The numbers the router and the autoscaler act on."""

    queue_depth: int
    in_flight: int
    queue_capacity: int
    max_batch_size: int
    draining: bool


class Scheduler:
    """Owns the queue and the single worker loop of one pod."""

    def __init__(
        self,
        queue_limit: int,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._limit = queue_limit
        self._max_batch = max_batch_size
        self._max_wait = max_wait_s
        self._on_batch = on_batch
        self._waiting: collections.deque[Job] = collections.deque()
        self._active: list[Job] = []
        self._wakeup = asyncio.Event()
        # Set and replaced on every change: waiters hold the event of their moment.
        self._changed = asyncio.Event()
        self._draining = False
        # One thread: the engines already use every core per batch, and one
        # thread keeps a model's weights and caches on one thread.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine")

    @property
    def load(self) -> Load:
        return Load(
            queue_depth=len(self._waiting),
            in_flight=len(self._active),
            queue_capacity=self._limit,
            max_batch_size=self._max_batch,
            draining=self._draining,
        )

    def submit(self, job: Job) -> None:
        """Queues a job, or refuses it at once when the queue is full or the pod drains."""
        if self._draining:
            raise Draining("this pod is shutting down")
        if len(self._waiting) >= self._limit:
            raise QueueFull(f"queue full ({self._limit} requests waiting)")
        self._waiting.append(job)
        self._wakeup.set()
        self._notify()

    def cancel(self, job: Job) -> None:
        """Forgets a job whose caller has gone away; its remaining work is skipped."""
        with contextlib.suppress(ValueError):
            self._waiting.remove(job)
        with contextlib.suppress(ValueError):
            self._active.remove(job)
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

    async def run(self) -> None:
        """The worker loop; runs until cancelled."""
        try:
            while True:
                if self.idle:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                await self._gather_batch()
                await self._step()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        while self._waiting and len(self._active) < self._max_batch:
            self._active.append(self._waiting.popleft())
        self._notify()

    async def _gather_batch(self) -> None:
        """Waits up to max_wait for more requests while a batch could still grow."""
        self._admit()
        deadline = time.monotonic() + self._max_wait
        while self._room_in_batch() and (remaining := deadline - time.monotonic()) > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            self._admit()

    def _room_in_batch(self) -> bool:
        if not self._active:
            return False
        engine = self._active[0].engine
        same = sum(1 for job in self._active if job.engine is engine)
        return (
            same < min(engine.max_batch_size, self._max_batch)
            and len(self._active) < self._max_batch
        )

    async def _step(self) -> None:
        if not self._active:
            return
        engine = self._active[0].engine
        batch = [job for job in self._active if job.engine is engine][: engine.max_batch_size]
        # Served jobs go to the back so active jobs take turns.
        self._active = [job for job in self._active if job not in batch] + batch
        self._on_batch(len(batch))
        items = [(job.utterances[job.next_utterance], job.params) for job in batch]
        loop = asyncio.get_running_loop()
        pieces: Iterator[list[Audio]] = engine.run_batch(items)
        try:
            while (
                step := await loop.run_in_executor(self._executor, next, pieces, None)
            ) is not None:
                for job, piece in zip(batch, step, strict=True):
                    if piece.size:
                        job.output.put_nowait(piece)
        except Exception as error:  # the engine failed: every job in the batch learns why
            for job in batch:
                job.output.put_nowait(error)
                self.cancel(job)
            return
        for job in batch:
            job.next_utterance += 1
            if job.finished:
                job.output.put_nowait(DONE)
                self.cancel(job)
