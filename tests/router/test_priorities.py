"""Priority classes through the router and real pods: batch is shed first, the class reaches the pod."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from timed_fleet import VOICE, address, running_router, stub_for, timed_pods, until, words

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2
from ttsfleet.router.server import RouterServer

BATCH = tts_pb2.TTSRequest(text="hi", priority=tts_pb2.PRIORITY_BATCH)


def shed(router: RouterServer, priority: str) -> float:
    value = router.metrics.registry.get_sample_value(
        "ttsfleet_router_shed_total", {"pool": "pool", "priority": priority}
    )
    return value or 0.0


def admitted(pod: InferenceServer, priority: str) -> float:
    value = pod.metrics.registry.get_sample_value(
        "ttsfleet_inference_queue_wait_seconds_count", {"priority": priority}
    )
    return value or 0.0


async def test_batch_is_shed_at_half_a_queue_while_interactive_work_gets_in() -> None:
    async with (
        timed_pods([0.05], queue_limit=4, max_batch_size=1) as (pod,),
        running_router([pod]) as router,
        stub_for(router) as stub,
    ):
        long_request = tts_pb2.TTSRequest(text=words(40))
        busy = [stub.StreamSynthesize(long_request)]
        await until(lambda: pod.scheduler.load.in_flight == 1)
        busy += [stub.StreamSynthesize(long_request) for _ in range(2)]
        await until(lambda: router.datastore.candidates(VOICE)[0].queue_depth == 2)
        with pytest.raises(grpc.aio.AioRpcError) as by_field:
            await stub.Synthesize(BATCH)
        with pytest.raises(grpc.aio.AioRpcError) as by_metadata:
            await stub.Synthesize(
                tts_pb2.TTSRequest(text="hi"), metadata=(("x-ttsfleet-priority", "batch"),)
            )
        for refusal in (by_field.value, by_metadata.value):
            assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too busy for batch work" in (refusal.details() or "")
            assert dict(refusal.trailing_metadata() or ())["retry-after"] == "5"
        assert shed(router, "batch") == 2 and shed(router, "interactive") == 0
        answer = await stub.Synthesize(tts_pb2.TTSRequest(text="hi"))  # a person still gets in
        assert answer.audio.startswith(b"RIFF")
        for call in busy:
            call.cancel()


async def test_the_class_reaches_the_pod_and_orders_its_queue() -> None:
    async with (
        timed_pods([0.0]) as (pod,),
        running_router([pod]) as router,
        stub_for(router) as stub,
    ):
        await stub.Synthesize(BATCH, metadata=(("x-ttsfleet-tenant", "audiobooks"),))
        await stub.Synthesize(tts_pb2.TTSRequest(text="hi"))
        assert (admitted(pod, "batch"), admitted(pod, "interactive")) == (1, 1)


def say(router: RouterServer, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`ttsfleet say` as a user runs it, against the router."""
    return subprocess.run(
        [sys.executable, "-m", "ttsfleet.cli", "say", "hi there", "-o", str(out),
         "--address", f"127.0.0.1:{router.port}", *options],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_the_say_command_sends_the_class_it_is_given(tmp_path: Path) -> None:
    async with timed_pods([0.0]) as (pod,), running_router([pod]) as router:
        for option, counts in [((), (0, 1)), (("--priority", "batch"), (1, 1))]:
            done = await asyncio.to_thread(say, router, tmp_path / "said.wav", *option)
            assert done.returncode == 0, done.stderr
            assert (tmp_path / "said.wav").read_bytes().startswith(b"RIFF")
            assert (admitted(pod, "batch"), admitted(pod, "interactive")) == counts
        refused = await asyncio.to_thread(say, router, tmp_path / "x.wav", "--priority", "urgent")
        assert refused.returncode == 2
        assert "--priority: invalid choice: 'urgent'" in refused.stderr
        assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("direct", [True, False], ids=["pod", "router"])
async def test_a_priority_that_is_not_a_class_is_invalid_argument(direct: bool) -> None:
    async with (
        timed_pods([0.0]) as (pod,),
        running_router([pod]) as router,
        grpc.aio.insecure_channel(
            address(pod) if direct else f"127.0.0.1:{router.port}"
        ) as channel,
    ):
        synthesize = channel.unary_unary(
            "/TTSService/Synthesize",
            request_serializer=tts_pb2.TTSRequest.SerializeToString,
            response_deserializer=tts_pb2.TTSResponse.FromString,
        )
        cases = [
            (tts_pb2.TTSRequest(text="hi", priority=7), (), "priority 7"),  # type: ignore[arg-type]
            (
                tts_pb2.TTSRequest(text="hi"),
                (("x-ttsfleet-priority", "urgent"),),
                "x-ttsfleet-priority",
            ),
            (tts_pb2.TTSRequest(text="hi"), (("x-ttsfleet-tenant", "a b"),), "x-ttsfleet-tenant"),
        ]
        for request, metadata, named in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await synthesize(request, metadata=metadata)
            assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert named in (error.value.details() or "")
