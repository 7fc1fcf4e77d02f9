"""Router benchmark: pass-through cost, and the pickers side by side on uneven pods.

Run: python tests/bench/bench_router.py [--rounds N] [--requests N]

1. Throughput and time to first byte at 32 concurrent streams of ~20 chunks
   from a fast fake engine: direct to the pod, through a bare grpc.aio
   pass-through proxy, and through the router (one pod behind each).
2. Latency over four pods where one is three times slower: the router with
   each picker (finish-time, the default; power-of-two on queue depth;
   round-robin).
3. The same over four even pods, one stopped from outside two thirds of the
   time (SIGSTOP 0.2 s, SIGCONT 0.1 s, in turns, while the load runs).

Pods, proxy and routers are separate processes on 127.0.0.1, as in a
deployment; the load comes from this process. Rounds alternate between the
setups so drift on this shared machine hits each alike; the tables quote the
median round and the ratios that matter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from throttle import throttled  # noqa: E402
from timed_fleet import Child, child_process, pod_process, words  # noqa: E402

from ttsfleet.proto import tts_pb2, tts_pb2_grpc  # noqa: E402

CONCURRENCY = 32


TEXT = words(20)
STREAM = "/TTSService/StreamSynthesize"
# Uneven pods: three take 20 ms an engine step, the fourth 60 ms; batches of four.
UNEVEN_STEPS = (0.02, 0.02, 0.02, 0.06)
UNEVEN_BATCH = 4
UNEVEN_CHUNKS = 10
PICKERS = ("finish-time", "power-of-two", "round-robin")


# --- the processes -------------------------------------------------------------------------


async def serve_proxy(upstream: str, port: int) -> None:
    """The floor to approach: bytes in, bytes out, no picking, no bookkeeping."""
    channel = grpc.aio.insecure_channel(upstream)
    forward = channel.unary_stream(STREAM)

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for chunk in forward(request, timeout=context.time_remaining()):
            yield chunk

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "TTSService", {"StreamSynthesize": grpc.unary_stream_rpc_method_handler(stream)}
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def router(pods: Sequence[Child], picker: str) -> contextlib.AbstractAsyncContextManager[Child]:
    endpoints = [f"--endpoint=127.0.0.1:{pod.port}=bench:timed" for pod in pods]
    return child_process(
        "-m", "ttsfleet.cli", "router", "--host", "127.0.0.1", "--metrics-port", "-1",
        "--log-level", "WARNING", "--picker", picker, *endpoints,
    )  # fmt: skip


# --- the load ------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    ttfb: list[float]
    latency: list[float]
    cpu_seconds: float = 0.0  # used by the process under test meanwhile

    @property
    def streams_per_second(self) -> float:
        return len(self.latency) / self.seconds


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def load(target: Child, per_client: int, text: str) -> Run:
    """CONCURRENCY clients, each streaming `per_client` requests in turn."""
    ttfb: list[float] = []
    latency: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.port}") as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        request = tts_pb2.TTSRequest(text=text)
        await stub.StreamSynthesize(request).read()  # connect and warm up

        async def client() -> None:
            for _ in range(per_client):
                started = time.perf_counter()
                first = None
                async for _chunk in stub.StreamSynthesize(request, timeout=60):
                    first = first or time.perf_counter()
                assert first is not None
                ttfb.append(first - started)
                latency.append(time.perf_counter() - started)

        cpu = target.cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return Run(time.perf_counter() - started, ttfb, latency, target.cpu_seconds() - cpu)


@dataclass
class Series:
    """One setup's runs, a round each."""

    runs: list[Run]

    @property
    def streams_per_second(self) -> float:
        return statistics.median(run.streams_per_second for run in self.runs)

    @property
    def cpu_ms_per_stream(self) -> float:
        return statistics.median(1000 * r.cpu_seconds / len(r.latency) for r in self.runs)

    def ttfb(self, q: int) -> float:
        return percentile([t for run in self.runs for t in run.ttfb], q)

    def latency(self, q: int) -> float:
        return percentile([t for run in self.runs for t in run.latency], q)

    def ratio(self, other: Series, value: Callable[[Run], float]) -> float:
        """Median over rounds of this setup's value over the other's in the same round."""
        return statistics.median(
            value(mine) / value(theirs) for mine, theirs in zip(self.runs, other.runs, strict=True)
        )


async def alternate(
    targets: dict[str, Child], rounds: int, per_client: int, text: str
) -> dict[str, Series]:
    """Runs the same load on each target in turn, `rounds` times."""
    series = {name: Series([]) for name in targets}
    for _ in range(rounds):
        for name, target in targets.items():
            series[name].runs.append(await load(target, per_client, text))
    return series


# --- the comparisons -----------------------------------------------------------------------


async def pass_through(rounds: int, per_client: int) -> dict[str, Series]:
    async with contextlib.AsyncExitStack() as stack:
        fast = await stack.enter_async_context(pod_process(0.0))
        proxy = await stack.enter_async_context(
            child_process(__file__, "proxy", "--upstream", f"127.0.0.1:{fast.port}")
        )
        front = await stack.enter_async_context(router([fast], "power-of-two"))
        targets = {"direct to the pod": fast, "bare grpc.aio proxy": proxy, "router": front}
        return await alternate(targets, rounds, per_client, TEXT)


async def uneven_pods(
    rounds: int, per_client: int, steps: Sequence[float], stop_last: bool
) -> dict[str, Series]:
    """Every picker in front of the same pods; with `stop_last`, the last pod is stopped
    two thirds of the time while the load runs."""
    async with contextlib.AsyncExitStack() as stack:
        pods = [await stack.enter_async_context(pod_process(step, UNEVEN_BATCH)) for step in steps]
        targets = {
            picker: await stack.enter_async_context(router(pods, picker)) for picker in PICKERS
        }
        if stop_last:
            stack.enter_context(throttled(pods[-1].process.pid))
        return await alternate(targets, rounds, per_client, words(UNEVEN_CHUNKS))


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def bench(rounds: int, per_client: int) -> None:
    passing = await pass_through(rounds, per_client)
    few = max(per_client // 2, 4)
    uneven = await uneven_pods(rounds, few, UNEVEN_STEPS, stop_last=False)
    stopped = await uneven_pods(rounds, few, (UNEVEN_STEPS[0],) * 4, stop_last=True)
    proxy = passing["bare grpc.aio proxy"]
    throughput = lambda run: run.streams_per_second  # noqa: E731
    print(
        table(
            f"\nPass-through: {CONCURRENCY} concurrent streams of 20 chunks from one fast pod, "
            f"{rounds} rounds ({CONCURRENCY * per_client} streams each)",
            ["path", "streams/s", "vs proxy", "TTFB p50 ms", "TTFB p99 ms", "CPU ms/stream"],
            [
                [
                    name,
                    f"{series.streams_per_second:.0f}",
                    f"{series.ratio(proxy, throughput):.2f}",
                    ms(series.ttfb(50)),
                    ms(series.ttfb(99)),
                    f"{series.cpu_ms_per_stream:.2f}",
                ]
                for name, series in passing.items()
            ],
        )
    )
    for title, series_by_picker in (
        ("four pods, one three times slower", uneven),
        ("four even pods, one stopped 2/3 of the time (SIGSTOP/SIGCONT)", stopped),
    ):
        print(picker_table(title, series_by_picker, rounds))
    print(
        f"\nrouter / bare proxy throughput: {passing['router'].ratio(proxy, throughput):.2f}"
        " (target >= 0.90)"
    )
    for name, series_by_picker in (("slower pod", uneven), ("stopped pod", stopped)):
        finish, queue = series_by_picker["finish-time"], series_by_picker["power-of-two"]
        robin = series_by_picker["round-robin"]
        print(
            f"{name}: finish-time p99 / power-of-two p99 "
            f"{finish.latency(99) / queue.latency(99):.2f}, / round-robin p99 "
            f"{finish.latency(99) / robin.latency(99):.2f}"
        )


def picker_table(title: str, series_by_picker: dict[str, Series], rounds: int) -> str:
    robin = series_by_picker["round-robin"]
    return table(
        f"\nPickers: {title}; {CONCURRENCY} concurrent streams of {UNEVEN_CHUNKS} chunks, "
        f"{rounds} rounds",
        ["picker", "p50 ms", "p99 ms", "p99 vs round-robin", "streams/s"],
        [
            [
                name,
                ms(series.latency(50)),
                ms(series.latency(99)),
                f"{series.latency(99) / robin.latency(99):.2f}",
                f"{series.streams_per_second:.0f}",
            ]
            for name, series in series_by_picker.items()
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    child_proxy = sub.add_parser("proxy", help="(internal) the bare pass-through proxy")
    child_proxy.add_argument("--upstream", required=True)
    child_proxy.add_argument("--port", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="streams per client per round")
    args = parser.parse_args()
    if args.mode == "proxy":
        asyncio.run(serve_proxy(args.upstream, args.port))
    else:
        asyncio.run(bench(args.rounds, args.requests))


if __name__ == "__main__":
    main()
