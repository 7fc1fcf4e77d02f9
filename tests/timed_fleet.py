"""Inference servers with controlled timing and a router in front, all on 127.0.0.1.

`TimedEngine` is a voice engine whose speed is one number: every word of the
text is one utterance of one window by default (so a request streams one
chunk per word) and each engine step sleeps `step_seconds`, whatever the
batch size. Real inference
servers run it over real gRPC, so a "three times slower" pod is exactly that.
Shared by the router tests and the router benchmark; run as a script, it is
one timed pod in its own process (so a test can kill it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import grpc
import numpy as np

from ttsfleet.audio import Audio
from ttsfleet.inference.engine import (
    BatchItem,
    Stream,
    SynthesisParams,
    Utterance,
    VoiceEngine,
    VoiceInfo,
)
from ttsfleet.inference.server import InferenceServer
from ttsfleet.manifests import Batching, PodConfig, Voice, VoiceSource
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer
from ttsfleet.router.settings import RouterSettings
from ttsfleet.ssml import Segment, spoken_text

SAMPLE_RATE = 16000
VOICE = "timed"
START_SECONDS = 60


def words(count: int) -> str:
    """A text the timed engine streams as `count` chunks (one per word)."""
    return " ".join(f"word{i}" for i in range(count))


@dataclass(eq=False)
class TimedStream(Stream):
    """An utterance of the timed engine: how many windows it still has to decode."""

    utterance: Utterance
    windows_left: int

    @property
    def done(self) -> bool:
        return self.windows_left == 0


class TimedEngine(VoiceEngine):
    """Streams one constant chunk per window, `windows` windows per word, `step_seconds` per step."""

    def __init__(
        self,
        name: str = "timed",
        step_seconds: float = 0.0,
        max_batch_size: int = 8,
        samples_per_chunk: int = 320,
        windows: int = 1,
    ) -> None:
        self.info = VoiceInfo(name=name, engine="timed", language="en-US", sample_rate=SAMPLE_RATE)
        self.max_batch_size = max_batch_size
        self.step_seconds = step_seconds
        self.windows = windows
        self._chunk = np.full(samples_per_chunk, 0.25, dtype=np.float32)

    def utterances(self, text: str | Sequence[Segment], words: bool = False) -> list[Utterance]:
        spoken = text if isinstance(text, str) else spoken_text(text)
        return [Utterance((i,)) for i, _ in enumerate(spoken.split())]

    def default_params(self, speed: float) -> SynthesisParams:
        return SynthesisParams(length_scale=1 / speed, noise_scale=0.0, noise_w=0.0)

    def estimate_seconds(self, utterance: Utterance, params: SynthesisParams) -> float:
        return self.windows * self._chunk.size / SAMPLE_RATE

    def prepare(self, items: Sequence[BatchItem]) -> list[Stream]:
        return [TimedStream(utterance, self.windows) for utterance, _ in items]

    def step(self, streams: Sequence[Stream]) -> list[Audio]:
        if self.step_seconds:
            time.sleep(self.step_seconds)
        for stream in streams:
            cast(TimedStream, stream).windows_left -= 1
        return [self._chunk for _ in streams]


def timed_config(*voices: str, queue_limit: int = 64, max_batch_size: int = 8) -> PodConfig:
    """A pod configuration for timed voices (no manifests: the engines are built directly)."""
    return PodConfig(
        pool="timed",
        default_voice=voices[0],
        voices=tuple(Voice(name=voice, source=VoiceSource(path="/timed")) for voice in voices),
        queue_limit=queue_limit,
        batching=Batching(max_batch_size=max_batch_size, max_wait_ms=1),
    )


def address(server: InferenceServer) -> str:
    return f"127.0.0.1:{server.port}"


@contextlib.asynccontextmanager
async def timed_pods(
    steps: Sequence[float],
    voices: Sequence[str] = (VOICE,),
    samples_per_chunk: int = 320,
    **config: Any,
) -> AsyncIterator[list[InferenceServer]]:
    """One inference server per step time, each serving `voices` with timed engines."""
    servers = [
        InferenceServer(
            timed_config(*voices, **config),
            {
                voice: TimedEngine(voice, step_seconds=step, samples_per_chunk=samples_per_chunk)
                for voice in voices
            },
        )
        for step in steps
    ]
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await server.start("127.0.0.1", 0, None)
            stack.push_async_callback(server.stop, 1.0)
        yield servers


@contextlib.asynccontextmanager
async def running_router(
    pods: Sequence[InferenceServer],
    pool: str = "pool",
    voices: Sequence[str] = (VOICE,),
    default_voice: str = VOICE,
    port: int = 0,
    **settings: Any,
) -> AsyncIterator[RouterServer]:
    """A router in front of `pods` (on `port`, 0: any), waiting until every pod's load is known."""
    discovery = StaticDiscovery([(address(p), pool, voices) for p in pods], default_voice)
    router = RouterServer(discovery, RouterSettings(**settings))
    await router.start("127.0.0.1", port)
    try:
        store = router.datastore
        await until(
            lambda: (
                len(store.endpoints) == len(pods) and all(e.reported_at for e in store.endpoints)
            )
        )
        yield router
    finally:
        await router.stop(1.0)


async def until(condition: Callable[[], object], seconds: float = 10.0) -> None:
    """Polls `condition` (bounded); fails the test if it never holds."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {seconds} s")


async def fill(stub: Any, pods: Sequence[InferenceServer]) -> list[grpc.aio.UnaryStreamCall]:
    """Fills pods that have one active and one waiting slot, active slots first.

    One at a time per pod: a pod refuses a second request while the first still waits
    to be admitted.
    """
    request = tts_pb2.TTSRequest(text=words(40))
    calls = [stub.StreamSynthesize(request) for _ in pods]
    await until(lambda: all(pod.scheduler.load.in_flight == 1 for pod in pods))
    calls += [stub.StreamSynthesize(request) for _ in pods]
    await until(lambda: all(pod.scheduler.load.queue_depth == 1 for pod in pods))
    return calls


@contextlib.asynccontextmanager
async def stub_for(
    router: RouterServer,
    stub_class: Callable[[grpc.aio.Channel], Any] = tts_pb2_grpc.TTSServiceStub,
) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        yield stub_class(channel)


@dataclass(frozen=True)
class Child:
    """A gRPC server in its own process."""

    port: int
    process: asyncio.subprocess.Process

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def child_process(*args: str, stderr: IO[bytes] | None = None) -> AsyncIterator[Child]:
    """Runs `python args --port N`; yields once it answers on 127.0.0.1:N; stops it after."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, "--port", str(port), stderr=stderr
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), START_SECONDS)
        yield Child(port, process)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


def pod_process(
    step: float, batch: int = 8, queue_limit: int = 1024
) -> contextlib.AbstractAsyncContextManager[Child]:
    """One timed pod in its own process."""
    return child_process(
        __file__, "--step", str(step), "--batch", str(batch), "--queue-limit", str(queue_limit)
    )


async def serve_pod(step: float, batch: int, queue_limit: int, port: int) -> None:
    engine = TimedEngine(step_seconds=step, max_batch_size=batch)
    server = InferenceServer(
        timed_config(VOICE, queue_limit=queue_limit, max_batch_size=batch), {VOICE: engine}
    )
    await server.start("127.0.0.1", port, None)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one timed inference pod on 127.0.0.1")
    parser.add_argument("--step", type=float, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--queue-limit", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve_pod(args.step, args.batch, args.queue_limit, args.port))
