"""ListVoices for the whole fleet: one pod of each pool describes its voices.

Discovery knows voice names only; a pod knows their language, rate and
engine. Each pool is asked once, concurrently; a pool that cannot answer
still lists its voices by name, so the answer never hides a voice.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from ttsfleet import wire
from ttsfleet.proto import tts_pb2
from ttsfleet.router import picker as picking
from ttsfleet.router import revisions
from ttsfleet.router.endpoints import Datastore

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0


class Catalog:
    def __init__(self, datastore: Datastore, picker: picking.Picker, stale_after: float) -> None:
        self._datastore = datastore
        self._picker = picker
        self._stale_after = stale_after

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "ListVoices": grpc.unary_unary_rpc_method_handler(
                self.list_voices,
                request_deserializer=tts_pb2.ListVoicesRequest.FromString,
                response_serializer=tts_pb2.ListVoicesResponse.SerializeToString,
            )
        }

    async def list_voices(
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.ListVoicesResponse:
        timeout = context.time_remaining() or DEFAULT_TIMEOUT
        pools = self._datastore.pools
        answers = await asyncio.gather(
            *(self._ask(pool, names, timeout) for pool, names in pools.items())
        )
        voices: dict[str, tts_pb2.Voice] = {}
        for described in answers:
            voices.update((voice.name, voice) for voice in described)
        for names in pools.values():
            for name in names - voices.keys():
                voices[name] = tts_pb2.Voice(name=name)
        return tts_pb2.ListVoicesResponse(
            voices=[voices[name] for name in sorted(voices)],
            default_voice=self._datastore.default_voice,
        )

    async def _ask(self, pool: str, names: frozenset[str], seconds: float) -> list[tts_pb2.Voice]:
        """The voices one pod of `pool` describes (a stable one in a canary); none when no pod can."""
        candidates = [c for c in self._datastore.candidates("") if c.pool == pool]
        candidates = revisions.served(candidates, self._datastore.weights.get(pool, {}))
        turn = picking.turn(candidates, self._stale_after)
        endpoint = self._datastore.get(self._picker.choose(turn, 0.0).address) if turn else None
        if endpoint is None:
            return []
        call = endpoint.channel.unary_unary(
            wire.LIST_VOICES,
            request_serializer=tts_pb2.ListVoicesRequest.SerializeToString,
            response_deserializer=tts_pb2.ListVoicesResponse.FromString,
        )
        try:
            response: tts_pb2.ListVoicesResponse = await call(
                tts_pb2.ListVoicesRequest(), timeout=seconds
            )
        except grpc.aio.AioRpcError as error:
            log.warning(
                "pod could not list its voices",
                extra={"pod": endpoint.address, "code": error.code().name},
            )
            return []
        return [voice for voice in response.voices if voice.name in names]
