"""The committed gRPC stubs are what the .proto files generate, and keep the seed contract."""

from __future__ import annotations

from ttsfleet.proto import generate, tts_pb2


def test_stubs_are_current() -> None:
    assert generate.stale_files() == [], "run: python -m ttsfleet.proto.generate"


def test_seed_contract_is_unchanged() -> None:
    """Existing clients depend on these exact names and numbers, with no package."""
    service = tts_pb2.DESCRIPTOR.services_by_name["TTSService"]
    assert tts_pb2.DESCRIPTOR.package == ""
    assert service.full_name == "TTSService"
    methods = {m.name: m for m in service.methods}
    assert methods["Synthesize"].input_type.full_name == "TTSRequest"
    assert methods["Synthesize"].output_type.full_name == "TTSResponse"
    assert not methods["Synthesize"].server_streaming
    assert methods["StreamSynthesize"].output_type.full_name == "AudioChunk"
    assert methods["StreamSynthesize"].server_streaming
    fields = {
        (m, f.name): f.number
        for m in ("TTSRequest", "TTSResponse", "AudioChunk")
        for f in tts_pb2.DESCRIPTOR.message_types_by_name[m].fields
    }
    assert fields[("TTSRequest", "text")] == 1
    assert fields[("TTSResponse", "audio")] == 1
    assert fields[("AudioChunk", "chunk")] == 1
