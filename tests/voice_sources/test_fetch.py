"""The voice fetcher against real servers on loopback: HTTPS with a test CA, a registry, S3.

Every fetch is of the real voice `joe` (its model and config), and every
failure must say why in words an operator can act on.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import voice_servers
from multi_speaker_voice import SPEAKERS, build_voice
from voice_servers import JOE_CONFIG, JOE_MODEL, JOE_SHA256, Hub

from ttsfleet.manifests import ManifestError, VoiceSource, source_from_manifest
from ttsfleet.operator.voice_status import VoiceReport, voice_status
from ttsfleet.voices.config import VoiceConfig
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.fetch import Fetcher
from ttsfleet.voices.s3 import S3Credentials

MODEL_BYTES, CONFIG_BYTES = JOE_MODEL.read_bytes(), JOE_CONFIG.read_bytes()
WRONG_SHA256 = "0" * 64


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with voice_servers.hub(tmp_path_factory.mktemp("hub")) as server:
        server.publish("rhasspy/joe", "v1", "en/joe.onnx", MODEL_BYTES, CONFIG_BYTES)
        yield server


def hf_source(hub: Hub, sha256: str = JOE_SHA256, **source: object) -> VoiceSource:
    return source_from_manifest(
        {
            "huggingface": {
                "endpoint": hub.url,
                "repo": "rhasspy/joe",
                "revision": "v1",
                "file": "en/joe.onnx",
            },
            "sha256": sha256,
            **source,
        },
        "TTSVoice joe",
    )


def test_huggingface_over_https_then_the_node_cache(hub: Hub, tmp_path: Path) -> None:
    """The second fetch on the same node (a scale-up) makes no request at all."""
    fetcher = Fetcher(tmp_path, ca_file=str(hub.ca_file))
    before = len(hub.requests)
    first = fetcher.fetch(hf_source(hub))
    assert not first.cached
    assert first.resolved == f"{hub.url}/rhasspy/joe/resolve/v1/en/joe.onnx"
    assert (first.sha256, first.size) == (JOE_SHA256, len(MODEL_BYTES))
    assert first.model.read_bytes() == MODEL_BYTES
    assert first.config.read_bytes() == CONFIG_BYTES
    assert hub.requests[before:] == [
        "/rhasspy/joe/resolve/v1/en/joe.onnx",
        "/rhasspy/joe/resolve/v1/en/joe.onnx.json",
    ]

    served = len(hub.requests)
    second = Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(hf_source(hub))
    assert second.cached and second.model == first.model
    assert len(hub.requests) == served


def test_digest_mismatch_names_both_digests_and_caches_nothing(hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(VoiceSourceError) as caught:
        Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(hf_source(hub, sha256=WRONG_SHA256))
    error = caught.value
    assert (error.reason, error.permanent) == ("DigestMismatch", True)
    assert JOE_SHA256 in error.message and WRONG_SHA256 in error.message
    assert list(tmp_path.iterdir()) == []  # no entry, no staging left behind


def test_size_cap(hub: Hub, tmp_path: Path) -> None:
    source = hf_source(hub, limits={"maxBytes": 1_000_000})
    with pytest.raises(VoiceSourceError, match="larger than the limit of 1000000 bytes") as caught:
        Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(source)
    assert caught.value.reason == "TooLarge"


def test_read_timeout_fails_in_bounded_time(hub: Hub, tmp_path: Path) -> None:
    source = hf_source(hub, limits={"readTimeoutSeconds": 0.5, "totalTimeoutSeconds": 5})
    hub.stall_seconds = 3.0
    try:
        started = time.monotonic()
        with pytest.raises(VoiceSourceError) as caught:
            Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(source)
        assert time.monotonic() - started < 60  # a hang bound, not a timing assertion
    finally:
        hub.stall_seconds = 0.0
    assert (caught.value.reason, caught.value.permanent) == ("Unreachable", False)
    assert "timed out" in caught.value.message.lower()


def test_total_timeout_stops_a_trickling_download(hub: Hub, tmp_path: Path) -> None:
    """Each piece arrives within the read timeout, but the whole takes too long."""
    source = hf_source(hub, limits={"readTimeoutSeconds": 5, "totalTimeoutSeconds": 1})
    hub.trickle_seconds = 0.3  # 1 MiB (one read of ours) takes 4.8 s: the watchdog cuts it
    try:
        with pytest.raises(VoiceSourceError, match="did not finish in time") as caught:
            Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(source)
    finally:
        hub.trickle_seconds = 0.0
    assert (caught.value.reason, caught.value.permanent) == ("Timeout", False)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_ca_is_refused(hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(VoiceSourceError, match="CERTIFICATE_VERIFY_FAILED"):
        Fetcher(tmp_path).fetch(hf_source(hub))


def test_missing_file_is_not_found(hub: Hub, tmp_path: Path) -> None:
    source = source_from_manifest(
        {"url": f"{hub.url}/rhasspy/joe/resolve/v1/nothing.onnx", "sha256": JOE_SHA256}, "here"
    )
    with pytest.raises(VoiceSourceError, match="HTTP 404") as caught:
        Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(source)
    assert (caught.value.reason, caught.value.permanent) == ("NotFound", True)


def test_unreadable_config_never_enters_the_cache(hub: Hub, tmp_path: Path) -> None:
    hub.publish("rhasspy/broken", "main", "joe.onnx", MODEL_BYTES, b"{not json")
    source = source_from_manifest(
        {"huggingface": {"endpoint": hub.url, "repo": "rhasspy/broken", "file": "joe.onnx"},
         "sha256": JOE_SHA256},
        "here",
    )  # fmt: skip
    with pytest.raises(VoiceSourceError) as caught:
        Fetcher(tmp_path, ca_file=str(hub.ca_file)).fetch(source)
    assert caught.value.reason == "BadConfig"
    assert list(tmp_path.iterdir()) == []


def test_oci_artifact_from_a_registry(tmp_path: Path) -> None:
    with voice_servers.registry(tmp_path) as host:
        digest = voice_servers.push_artifact(
            host, "voices/joe", "v1", {"joe.onnx": MODEL_BYTES, "joe.onnx.json": CONFIG_BYTES}
        )
        source = source_from_manifest(
            {
                "oci": {"reference": f"{host}/voices/joe:v1", "plainHttp": True},
                "sha256": JOE_SHA256,
            },
            "here",
        )
        fetched = Fetcher(tmp_path / "cache").fetch(source)
    assert fetched.resolved == f"{host}/voices/joe@{digest}"
    assert fetched.model.read_bytes() == MODEL_BYTES
    assert fetched.config.read_bytes() == CONFIG_BYTES


def test_s3_object(tmp_path: Path) -> None:
    with voice_servers.s3(tmp_path) as server:
        server.put("voices", "en/joe.onnx", MODEL_BYTES)
        server.put("voices", "en/joe.onnx.json", CONFIG_BYTES)
        keys = S3Credentials(server.access_key, server.secret_key)
        spec = {"endpoint": server.endpoint, "bucket": "voices", "key": "en/joe.onnx"}
        fetched = Fetcher(tmp_path / "cache", s3=keys).fetch(
            source_from_manifest({"s3": spec, "sha256": JOE_SHA256}, "here")
        )
        assert fetched.model.read_bytes() == MODEL_BYTES
        missing = source_from_manifest(
            {"s3": {**spec, "key": "en/none.onnx"}, "sha256": JOE_SHA256}, "here"
        )
        with pytest.raises(VoiceSourceError, match="NoSuchKey") as caught:
            Fetcher(tmp_path / "empty-cache", s3=keys).fetch(missing)
    assert caught.value.reason == "NotFound"


def test_fetch_voice_command(hub: Hub, tmp_path: Path) -> None:
    """What an init container runs: exit 0 when verified, 1 with the reason when not."""

    def run(sha256: str) -> subprocess.CompletedProcess[str]:
        hf = {"endpoint": hub.url, "repo": "rhasspy/joe", "revision": "v1", "file": "en/joe.onnx"}
        source = json.dumps({"huggingface": hf, "sha256": sha256})
        argv = [sys.executable, "-m", "ttsfleet.cli", "fetch-voice", "--voice", "joe"]
        argv += ["--source", source, "--cache", str(tmp_path), "--ca-file", str(hub.ca_file)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    bad = run(WRONG_SHA256)
    assert bad.returncode == 1
    assert "DigestMismatch" in bad.stderr and JOE_SHA256 in bad.stderr
    good = run(JOE_SHA256)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "sha256" / JOE_SHA256 / "model.onnx").read_bytes() == MODEL_BYTES


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"url": "https://example.test/joe.onnx"}, "sha256 must be the model's"),
        ({"url": "https://x/j.onnx", "sha256": "abc"}, "sha256 must be the model's"),
        ({"url": "https://x/j.onnx", "path": "/v"}, "exactly one of"),
        ({"s3": {"bucket": "b"}, "sha256": JOE_SHA256}, "spec.source.s3 is not valid"),
    ],
)
def test_bad_sources_are_refused_by_name(source: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        source_from_manifest(source, "TTSVoice joe")


def test_a_multi_speaker_voice_reports_its_speakers(hub: Hub, tmp_path: Path) -> None:
    """The trio voice (three speakers, built from joe's graph) fetched and read for the status."""
    model = build_voice(tmp_path / "trio")
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    config = model.with_name(model.name + ".json").read_bytes()
    hub.publish("rhasspy/trio", "main", "trio.onnx", model.read_bytes(), config)
    hf = {"endpoint": hub.url, "repo": "rhasspy/trio", "file": "trio.onnx"}
    source = source_from_manifest({"huggingface": hf, "sha256": sha256}, "TTSVoice trio")
    fetched = Fetcher(tmp_path / "cache", ca_file=str(hub.ca_file)).fetch(source)
    read = VoiceConfig.read(fetched.config)
    assert read.speakers == {name: index for index, name in enumerate(SPEAKERS)}
    report = VoiceReport(fetched.resolved, "Verified", "ok", sha256, fetched.size, read)
    status = voice_status(report, {}, generation=1, pools=[], now="2026-01-01T00:00:00Z")
    assert status["speakerCount"] == len(SPEAKERS)
    assert status["speakers"] == [{"name": n, "id": i} for i, n in enumerate(SPEAKERS)]
