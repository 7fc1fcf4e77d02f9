"""Mutual TLS between pods and their callers (the router, the operator's load reads, the canary
gate), over real gRPC on 127.0.0.1, with renewed files picked up."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timed_fleet import VOICE, TimedEngine, running_router, stub_for, timed_config, words

from ttsfleet.gate.main import parse_args, pod_tls
from ttsfleet.gate.measure import speak
from ttsfleet.inference.server import InferenceServer
from ttsfleet.operator.load import read_report
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.tls import DEFAULT_SERVER_NAME, ClientTLS, TLSFiles

Key = ec.EllipticCurvePrivateKey


def _pem_key(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject: str, key: Key, issuer: tuple[str, Key] | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:  # one certificate for both ends, as one cert-manager Certificate gives
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(DEFAULT_SERVER_NAME)]), False
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def issue(folder: Path, ca_name: str) -> TLSFiles:
    """A fresh CA and a certificate it signed, written as a Secret's files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, None)
    leaf = _certificate(DEFAULT_SERVER_NAME, key, (ca_name, ca_key))
    files = TLSFiles(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")
    for path, data in (
        (files.ca, ca.public_bytes(serialization.Encoding.PEM)),
        (files.key, _pem_key(key)),
        (files.cert, leaf.public_bytes(serialization.Encoding.PEM)),
    ):
        path.with_suffix(".new").write_bytes(data)
        path.with_suffix(".new").replace(path)  # whole files appear, as a Secret update swaps them
    return files


@pytest.fixture
async def secured_pod(tmp_path: Path) -> AsyncIterator[tuple[InferenceServer, TLSFiles]]:
    files = issue(tmp_path / "pod", "fleet-ca-1")
    pod = InferenceServer(timed_config(VOICE), {VOICE: TimedEngine(step_seconds=0.001)})
    await pod.start("127.0.0.1", 0, None, tls=files, health_port=0)
    try:
        yield pod, files
    finally:
        await pod.stop(1.0)


async def test_the_router_reaches_a_pod_only_with_a_certificate(
    secured_pod: tuple[InferenceServer, TLSFiles],
) -> None:
    pod, files = secured_pod
    async with running_router([pod], pod_tls=files) as router, stub_for(router) as stub:
        response = await stub.Synthesize(tts_pb2.TTSRequest(text=words(3)), timeout=30)
        assert response.audio.startswith(b"RIFF")
    # Without a client certificate (plaintext, or TLS without one) the pod answers nobody.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tts_pb2_grpc.TTSServiceStub(plain).Synthesize(
                tts_pb2.TTSRequest(text="hi"), timeout=5
            )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    anonymous = grpc.ssl_channel_credentials(root_certificates=files.ca.read_bytes())
    options = (("grpc.ssl_target_name_override", DEFAULT_SERVER_NAME),)
    async with grpc.aio.secure_channel(f"127.0.0.1:{pod.port}", anonymous, options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                tts_pb2.TTSRequest(text="hi"), timeout=5
            )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    # Probes use the plaintext health port, which serves nothing else.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pod.health_port}") as probe:
        reply = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await tts_pb2_grpc.TTSServiceStub(probe).Synthesize(tts_pb2.TTSRequest(text="hi"))
        assert missing.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_renewed_certificates_from_a_new_ca_take_over_without_restarts(
    secured_pod: tuple[InferenceServer, TLSFiles], tmp_path: Path
) -> None:
    """The pod's next handshake and the router's next channels use the replaced files."""
    pod, files = secured_pod  # one Secret's files for both ends, as the chart mounts them
    async with running_router([pod], pod_tls=files) as router, stub_for(router) as stub:
        assert (await stub.Synthesize(tts_pb2.TTSRequest(text=words(2)), timeout=30)).audio
        before = router.datastore.endpoints[0].channel
        issue(tmp_path / "pod", "fleet-ca-2")  # both ends read these files: a new CA and cert
        await asyncio.sleep(6)  # the router looks every 5 s
        assert router.datastore.endpoints[0].channel is not before  # a new handshake
        assert (await stub.Synthesize(tts_pb2.TTSRequest(text=words(2)), timeout=30)).audio
        report = await read_report(f"127.0.0.1:{pod.port}", 10, tls=ClientTLS(files))
        assert report is not None and report.queue_capacity > 0


async def test_the_gate_speaks_to_pods_with_the_pools_certificate(
    secured_pod: tuple[InferenceServer, TLSFiles],
) -> None:
    """`ttsfleet gate --pod-tls-*` (the flags its Job gets with pod TLS) streams from such pods."""
    pod, files = secured_pod
    address = f"127.0.0.1:{pod.port}"
    flags = ["--canary", address, "--stable", address, "--revision", "r1"]
    secret = {"cert": files.cert, "key": files.key, "ca": files.ca}
    certified = parse_args(flags + [f"--pod-tls-{k}={v}" for k, v in secret.items()])
    spoken = await asyncio.to_thread(speak, address, words(3), 30, pod_tls(certified))
    assert not spoken.error and spoken.samples.size and spoken.ttfa is not None
    plain = await asyncio.to_thread(speak, address, words(3), 5, pod_tls(parse_args(flags)))
    assert plain.error.startswith("UNAVAILABLE") and not plain.samples.size
    with pytest.raises(SystemExit):  # half the files: refused at start, not at the first call
        parse_args([*flags, f"--pod-tls-cert={files.cert}"])
