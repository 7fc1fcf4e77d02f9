"""`ttsfleet say`: speak text through a running endpoint and write a WAV file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from ttsfleet import wire
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet say", description=__doc__)
    parser.add_argument("text", help="what to say")
    parser.add_argument("-o", "--output", type=Path, default=Path("speech.wav"))
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="router or pod host:port")
    parser.add_argument("--voice", default="", help="voice name (default: the fleet's)")
    parser.add_argument(
        "--speaker", default="", help="a multi-speaker voice's speaker, by name or id"
    )
    parser.add_argument(
        "--priority",
        choices=[p.value for p in wire.Priority],
        default=wire.Priority.INTERACTIVE.value,
        help="who waits: interactive work is served first, batch work is shed first",
    )
    parser.add_argument("--speed", type=float, default=0.0, help="speaking rate, 1.0 is normal")
    parser.add_argument("--sample-rate", type=int, default=0, help="Hz; default the voice's")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds")
    wire.add_router_access_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    request = tts_pb2.TTSRequest(
        text=args.text,
        voice=args.voice,
        speaker=args.speaker,
        priority=wire.Priority(args.priority).field,
        speed=args.speed,
        sample_rate=args.sample_rate,
    )
    access = wire.RouterAccess.from_args(args)
    channel = (
        grpc.secure_channel(args.address, access.credentials)
        if access.credentials
        else grpc.insecure_channel(args.address)
    )
    with channel:
        try:
            response = tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                request, timeout=args.timeout, metadata=wire.bearer(access.token)
            )
        except grpc.RpcError as error:
            print(_explain(error, args.address), file=sys.stderr)
            return 1
    args.output.write_bytes(response.audio)
    print(
        f"wrote {args.output} ({response.audio_seconds:.2f} s of audio at "
        f"{response.sample_rate} Hz, voice {response.voice})"
    )
    return 0


def _explain(error: grpc.RpcError, address: str) -> str:
    code = error.code()
    details = error.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"ttsfleet say: no ttsfleet endpoint answered at {address} ({details}).\n"
            "Start one with: ttsfleet up -f examples/quickstart.yaml"
        )
    return f"ttsfleet say: {code.name}: {details}"
