"""Fan-out with the real voice: pieces spoken on two pods join into the audio of one request."""

from __future__ import annotations

import functools

import pytest
from audio_checks import assert_speech, pcm16
from timed_fleet import running_router
from voices import JOE_QUIET

from ttsfleet.inference.server import InferenceServer
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.pieces import FanoutPolicy
from ttsfleet.proto import tts_pb2

pytestmark = pytest.mark.voice  # the real Piper voice

TEXT = (
    "The quick brown fox jumps over the lazy dog. It was not amused. "
    "Then the dog got up, shook itself, and walked away. The fox stayed where it was! "
    "Would the dog come back? Nobody knew. The sun went down over the quiet farm."
)


async def test_fanned_out_speech_equals_one_request(two_quiet_pods: list[InferenceServer]) -> None:
    """Noise off makes the voice deterministic; pieces are whole sentences, so nothing changes."""
    voices = (JOE_QUIET.name,)
    async with running_router(
        two_quiet_pods, voices=voices, default_voice=JOE_QUIET.name
    ) as router:
        address = f"127.0.0.1:{router.port}"
        whole = FleetClient(address, FanoutPolicy(min_chars=10_000))
        split = FleetClient(address, FanoutPolicy(min_chars=50, piece_chars=60, max_chars=120))
        try:
            request = tts_pb2.TTSRequest(text=TEXT)
            one, fanned = bytearray(), bytearray()

            async def into(buffer: bytearray, data: bytes, rate: int) -> None:
                buffer.extend(data)

            one_rate = await whole.synthesize(
                request, lambda done, total: None, functools.partial(into, one)
            )
            pieces: list[int] = []
            rate = await split.synthesize(
                request, lambda done, total: pieces.append(total), functools.partial(into, fanned)
            )
        finally:
            await whole.close()
            await split.close()
    assert pieces[-1] >= 4
    assert rate == one_rate == 22050
    assert_speech(pcm16(bytes(fanned)), rate, TEXT)
    assert fanned == one
