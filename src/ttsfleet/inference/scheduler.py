"""The pod's bounded queue and the worker that batches it through the engines.

A request becomes a Synthesis: its utterances (sentences) and where its audio
goes. They wait in a bounded FIFO (the queue depth everyone reports) and are then
admitted into a small active set (the in-flight count). Each worker step takes
the next utterance of up to `max_batch_size` active requests of one voice,
runs them through the engine as one batch, and hands each its audio as soon
as the engine yields it. Active requests take turns utterance by utterance,
so a short request is not stuck behind a long one's remaining sentences.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from ttsfleet.audio import Audio
from ttsfleet.errors import TTSError
from ttsfleet.inference.engine import SynthesisParams, Utterance, VoiceEngine

# A synthesis's output queue carries audio pieces, then one of these.
DONE = None


@dataclass(eq=False)
class Synthesis:
    """One request's work: its utterances, its settings, and the queue its audio goes to."""

    engine: VoiceEngine
    utterances: list[Utterance]
    params: SynthesisParams
    output: asyncio.Queue[Audio | BaseException | None] = field(default_factory=asyncio.Queue)
    next_utterance: int = 0

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
        self._waiting: collections.deque[Synthesis] = collections.deque()
        self._active: list[Synthesis] = []
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
            draining=self._draining,
        )

    def submit(self, synthesis: Synthesis) -> None:
        """Queues a request, or refuses it at once when the queue is full or the pod drains."""
        if self._draining:
            raise TTSError(grpc.StatusCode.UNAVAILABLE, "this pod is shutting down")
        if len(self._waiting) >= self._limit:
            raise TTSError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"queue full ({self._limit} requests waiting)"
            )
        self._waiting.append(synthesis)
        self._wakeup.set()
        self._notify()

    def cancel(self, synthesis: Synthesis) -> None:
        """Forgets a synthesis whose caller has gone away; its remaining work is skipped."""
        with contextlib.suppress(ValueError):
            self._waiting.remove(synthesis)
        with contextlib.suppress(ValueError):
            self._active.remove(synthesis)
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
        same = sum(1 for active in self._active if active.engine is engine)
        return (
            same < min(engine.max_batch_size, self._max_batch)
            and len(self._active) < self._max_batch
        )

    async def _step(self) -> None:
        if not self._active:
            return
        engine = self._active[0].engine
        batch = [active for active in self._active if active.engine is engine]
        batch = batch[: engine.max_batch_size]
        # Served requests go to the back so active requests take turns.
        self._active = [active for active in self._active if active not in batch] + batch
        self._on_batch(len(batch))
        items = [(work.utterances[work.next_utterance], work.params) for work in batch]
        loop = asyncio.get_running_loop()
        pieces: Iterator[list[Audio]] = engine.run_batch(items)
        try:
            while (
                step := await loop.run_in_executor(self._executor, next, pieces, None)
            ) is not None:
                for synthesis, piece in zip(batch, step, strict=True):
                    if piece.size:
                        synthesis.output.put_nowait(piece)
        except Exception as error:  # the engine failed: every request in the batch learns why
            for synthesis in batch:
                synthesis.output.put_nowait(error)
                self.cancel(synthesis)
            return
        for synthesis in batch:
            synthesis.next_utterance += 1
            if synthesis.finished:
                synthesis.output.put_nowait(DONE)
                self.cancel(synthesis)
