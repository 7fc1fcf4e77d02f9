"""`ttsfleet up` and `ttsfleet say` as a user runs them: real processes, real voice, loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import yaml
from audio_checks import assert_speech, read_wav
from local_processes import TTSFLEET, Fleet, children, running_fleet, wait_for
from timed_fleet import free_port

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice  # the real Piper voice

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    log = tmp_path_factory.mktemp("fleet") / "fleet.log"
    with running_fleet(["-f", str(QUICKSTART)], log) as running:
        yield running


def test_up_prints_where_it_listens(fleet: Fleet) -> None:
    out = fleet.output()
    assert f"ttsfleet is listening on 127.0.0.1:{fleet.port}" in out
    assert "pool english: 2 pods" in out


def test_say_writes_a_wav_of_speech(fleet: Fleet, tmp_path: Path) -> None:
    target = tmp_path / "hello.wav"
    result = subprocess.run(
        [*TTSFLEET, "say", "Hello there, this is a test.", "-o", str(target), "--address", fleet.address],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    rate, samples = read_wav(target.read_bytes())
    assert_speech(samples, rate, "Hello there, this is a test.")


def test_serves_concurrent_clients(fleet: Fleet) -> None:
    texts = [f"Client number {i} asks for a short sentence." for i in range(8)]
    with grpc.insecure_channel(fleet.address) as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda t: stub.Synthesize(tts_pb2.TTSRequest(text=t), timeout=120), texts)
            )
        voices = stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=30)
    for text, response in zip(texts, responses, strict=True):
        rate, samples = read_wav(response.audio)
        assert_speech(samples, rate, text)
    assert [v.name for v in voices.voices] == ["joe"]


def test_a_dead_worker_is_restarted(fleet: Fleet) -> None:
    workers = children(fleet.process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: "restarting" in fleet.output(), "the restart to be logged")
    wait_for(
        lambda: (
            len(children(fleet.process.pid)) == 2 and workers[0] not in children(fleet.process.pid)
        ),
        "a new worker",
    )
    wait_for(
        lambda: fleet.output().count("inference server listening") >= 3, "the new worker to serve"
    )
    with grpc.insecure_channel(fleet.address) as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        for _ in range(4):
            assert stub.Synthesize(tts_pb2.TTSRequest(text="Still here."), timeout=120).audio


def test_a_sleeping_pool_starts_its_pod_on_the_first_request(tmp_path: Path) -> None:
    """The quickstart pool at minReplicas 0: no pod until a request, which is held, then served."""
    voice, pool = yaml.safe_load_all(QUICKSTART.read_text())
    del pool["spec"]["replicas"]
    pool["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 0, "maxReplicas": 1}
    manifests = tmp_path / "sleepy.yaml"
    manifests.write_text(yaml.safe_dump_all([voice, pool]))
    port, log = free_port(), tmp_path / "fleet.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*TTSFLEET, "up", "-f", str(manifests), "--port", str(port), "--log-format", "json"],
            stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "ttsfleet is listening" in log.read_text(), "the fleet to start")
        assert "pool english: asleep" in log.read_text()
        assert children(process.pid) == []
        text = "Good morning, sleepy pool."
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                tts_pb2.TTSRequest(text=text, request_id="first-of-the-day"), timeout=120
            )
        rate, samples = read_wav(answer.audio)
        assert_speech(samples, rate, text)
        assert len(children(process.pid)) == 1
        records = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        held = [r for r in records if r["message"] == "holding request while its pool wakes"]
        assert [r.get("request_id") for r in held] == ["first-of-the-day"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(90)


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*TTSFLEET, "up", "-f", str(QUICKSTART), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "ttsfleet is listening" in line:
            break
    workers = children(process.pid)
    process.send_signal(signal.SIGINT)
    assert process.wait(90) == 0, "".join(lines)
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


def test_bad_manifests_fail_clearly(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: ttsfleet.dev/v1alpha1\nkind: TTSPool\nmetadata: {name: p}\nspec: {voices: [ghost]}\n"
    )
    result = subprocess.run(
        [*TTSFLEET, "up", "-f", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no TTSVoice named ghost" in result.stderr
