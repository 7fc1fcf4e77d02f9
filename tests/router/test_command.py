"""`ttsfleet router` as a process: SIGTERM drains, logs are JSON lines with the request id."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import grpc
import pytest
from timed_fleet import VOICE, address, child_process, timed_pods, words

from ttsfleet.proto import tts_pb2, tts_pb2_grpc


async def test_sigterm_finishes_streams_in_flight_then_exits(tmp_path: Path) -> None:
    log_path = tmp_path / "router.log"
    async with timed_pods([0.02]) as pods:
        with log_path.open("wb") as log_file:
            router = child_process(
                "-m", "ttsfleet.cli", "router", "--host", "127.0.0.1", "--metrics-port", "-1",
                f"--endpoint={address(pods[0])}=pool:{VOICE}", "--default-voice", VOICE,
                stderr=log_file,
            )  # fmt: skip
            async with router as child:
                target = f"127.0.0.1:{child.port}"
                async with grpc.aio.insecure_channel(target) as channel:
                    stub = tts_pb2_grpc.TTSServiceStub(channel)
                    request = tts_pb2.TTSRequest(text=words(50), request_id="drain-me")
                    call = stub.StreamSynthesize(request)
                    assert await call.read() is not grpc.aio.EOF
                    child.process.send_signal(signal.SIGTERM)
                    rest = 0
                    while await call.read() is not grpc.aio.EOF:
                        rest += 1
                    assert (rest, await call.code()) == (49, grpc.StatusCode.OK)
                assert await asyncio.wait_for(child.process.wait(), 60) == 0
                async with grpc.aio.insecure_channel(target) as channel:
                    with pytest.raises(grpc.aio.AioRpcError) as error:
                        await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                            tts_pb2.TTSRequest(text="hi"), timeout=5
                        )
                    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    finished = [line for line in lines if line["message"] == "request finished"]
    assert finished == [
        finished[0] | {"request_id": "drain-me", "code": "OK", "component": "router"}
    ]
    assert any(line["message"] == "draining" for line in lines)
