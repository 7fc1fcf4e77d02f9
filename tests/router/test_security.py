"""TLS on the router's listener and bearer-token auth, over real gRPC on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timed_fleet import running_router, words

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.security import caller_name, token_file
from ttsfleet.router.server import RouterServer

TOKEN = "s3cret-token"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ttsfleet-router")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def secured(
    pods: list[InferenceServer], tmp_path: Path
) -> AsyncIterator[tuple[RouterServer, grpc.ChannelCredentials]]:
    cert, key = self_signed(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# one a line\n\n{TOKEN}\nanother-token\n")
    async with running_router(pods, tls_cert=cert, tls_key=key, auth_token_file=tokens) as router:
        yield router, grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())


async def synthesize(
    router: RouterServer, credentials: grpc.ChannelCredentials, token: str | None
) -> tts_pb2.TTSResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.secure_channel(f"127.0.0.1:{router.port}", credentials) as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        response: tts_pb2.TTSResponse = await stub.Synthesize(
            tts_pb2.TTSRequest(text=words(3)), metadata=metadata
        )
        return response


async def test_a_valid_token_over_tls_is_served(
    secured: tuple[RouterServer, grpc.ChannelCredentials],
) -> None:
    response = await synthesize(*secured, TOKEN)
    assert response.audio.startswith(b"RIFF")


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
async def test_missing_or_wrong_tokens_are_unauthenticated(
    secured: tuple[RouterServer, grpc.ChannelCredentials], token: str | None
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await synthesize(*secured, token)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    router, _ = secured
    assert all(e.in_flight == 0 and e.failures == 0 for e in router.datastore.endpoints)


async def test_health_checks_need_no_token(
    secured: tuple[RouterServer, grpc.ChannelCredentials],
) -> None:
    router, credentials = secured
    async with grpc.aio.secure_channel(f"127.0.0.1:{router.port}", credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_plaintext_clients_cannot_talk_to_a_tls_listener(
    secured: tuple[RouterServer, grpc.ChannelCredentials],
) -> None:
    router, _ = secured
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                tts_pb2.TTSRequest(text="hi"), timeout=5
            )
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_tokens_rotate_without_a_restart(
    secured: tuple[RouterServer, grpc.ChannelCredentials], tmp_path: Path
) -> None:
    """The Secret's file changes: the new token works, the old one no longer does."""
    (tmp_path / "tokens.new").write_text("rotated-token\n")
    (tmp_path / "tokens.new").replace(tmp_path / "tokens")  # as kubelet swaps a Secret's file
    await asyncio.sleep(1.1)  # the router looks at the file at most once a second
    assert (await synthesize(*secured, "rotated-token")).audio.startswith(b"RIFF")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await synthesize(*secured, TOKEN)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_an_emptied_token_file_keeps_the_last_tokens(
    secured: tuple[RouterServer, grpc.ChannelCredentials], tmp_path: Path
) -> None:
    (tmp_path / "tokens").write_text("# mid-edit\n")
    await asyncio.sleep(1.1)
    assert (await synthesize(*secured, TOKEN)).audio.startswith(b"RIFF")


def test_a_token_file_without_tokens_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="holds no token"):
        token_file(empty)


async def test_the_say_command_speaks_tls_with_a_token_file(
    secured: tuple[RouterServer, grpc.ChannelCredentials], tmp_path: Path
) -> None:
    router, _ = secured
    (tmp_path / "say-token").write_text(f"{TOKEN}\n")
    out = tmp_path / "said.wav"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ttsfleet.cli", "say", "hello there", "-o", str(out),
         "--address", f"127.0.0.1:{router.port}", "--router-ca", str(tmp_path / "tls.crt"),
         "--token-file", str(tmp_path / "say-token")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"RIFF")


def test_a_callers_token_names_it_without_revealing_it() -> None:
    """The router's name for a caller without a tenant: stable per token, never the token."""
    name = caller_name("Bearer s3cret-token")
    assert name.startswith("token-") and "s3cret" not in name
    assert caller_name("bearer s3cret-token ") == name != caller_name("Bearer other")
    assert caller_name(None) == caller_name("Basic abc") == caller_name("Bearer ") == ""
