"""The images as users run them: built from docker/, started from what the operator and chart render.

The inference pod gets exactly the command, args, env, config and security
settings the operator writes for the quickstart pool; the router, gateway
and job worker get the chart's, rendered with values that point them at
each other (static router endpoints, the gateway's router address, Redis
jobs so the worker runs as its own container). Every container runs as uid
65532 with a read-only root filesystem and no capabilities, on a bridge
network in 198.18.0.0/24 that this module creates and removes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from audio_checks import assert_speech, pcm16, read_wav
from cluster import binaries
from containers import (
    GATEWAY_IP,
    NETWORK,
    Container,
    build_images,
    create_network,
    podman,
    remove_network,
    run,
    volume_dir,
)
from redis_server import redis_server

from ttsfleet.manifests import load_manifests
from ttsfleet.operator import objects
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.rollouts import Verdict

pytestmark = [pytest.mark.containers, pytest.mark.voice]

ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE_IMAGE, INFERENCE_IMAGE = "localhost/ttsfleet:dev", "localhost/ttsfleet-inference:dev"
GATE_IMAGE = "localhost/ttsfleet-gate:dev"
POD_IP, ROUTER_IP, GATEWAY_POD_IP, WORKER_IP = (f"198.18.0.{n}" for n in (11, 12, 13, 14))
TEXT = "The quick brown fox jumps over the lazy dog."
READY_SECONDS = 180


def wait_ready(container: Container) -> None:
    """Until the spec's readiness probe passes; a container that exits fails with its logs."""
    deadline = time.monotonic() + READY_SECONDS
    while not container.ready():
        if not container.running():
            pytest.fail(f"{container.name} exited:\n{container.logs()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{container.name} not ready after {READY_SECONDS} s:\n{container.logs()}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host directories behind the pods' configMap, secret and claim volumes."""
    return tmp_path_factory.mktemp("volumes")


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    build_images()
    create_network()
    yield
    remove_network()


@pytest.fixture(scope="module")
def pod(network: None, files: Path) -> Iterator[Container]:
    """One inference pod of the quickstart pool, as the operator's Deployment describes it."""
    manifests = load_manifests(ROOT / "examples" / "quickstart.yaml")
    pool = manifests.pools[0]
    config_map, _, deployment, _ = objects.desired_objects(
        objects.PoolRef("smoke", pool.name, "uid"),
        pool,
        manifests.voices_of(pool),
        image=INFERENCE_IMAGE,
    )
    volume_dir(files, "config", config_map["data"])
    container = run(
        "smoke-pod", POD_IP, INFERENCE_IMAGE, deployment["spec"]["template"]["spec"], files
    )
    try:
        wait_ready(container)
        yield container
    finally:
        container.remove()


@pytest.fixture(scope="module")
def redis_url(
    network: None, pod: Container, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Redis on the bridge's host side (it exists once a container is attached)."""
    with redis_server(tmp_path_factory.mktemp("redis"), host=GATEWAY_IP) as url:
        yield url


@pytest.fixture(scope="module")
def chart(redis_url: str) -> dict[str, dict[str, Any]]:
    """The chart's pod specs by component, rendered to point the components at each other."""
    sets = {
        "image.repository": CONTROL_PLANE_IMAGE.split(":")[0],
        "image.tag": "dev",
        "router.endpoints[0]": f"{POD_IP}:50051=english:joe",
        "gateway.routerAddress": f"{ROUTER_IP}:50051",
        "jobs.backend": "redis",
        "jobs.redisUrl": redis_url,
    }
    args = [f"--set-string={key}={value}" for key, value in sets.items()]
    rendered = subprocess.run(
        [str(binaries.locate()["helm"]), "template", "smoke", str(ROOT / "charts" / "ttsfleet"),
         "--namespace=smoke", "--kube-version=v1.34.4", *args],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"]["template"]["spec"]
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"] == "Deployment"
    }


@pytest.fixture(scope="module")
def fleet(
    chart: dict[str, dict[str, Any]], pod: Container, files: Path
) -> Iterator[dict[str, Container]]:
    """Router, gateway and worker from the chart, in front of the pod."""
    volume_dir(files, "jobs")
    started = {"pod": pod}
    try:
        for component, ip in (
            ("router", ROUTER_IP),
            ("gateway", GATEWAY_POD_IP),
            ("worker", WORKER_IP),
        ):
            started[component] = run(
                f"smoke-{component}", ip, CONTROL_PLANE_IMAGE, chart[component], files
            )
        for component in ("router", "gateway"):
            wait_ready(started[component])
        yield started
    finally:
        for component in ("router", "gateway", "worker"):
            if component in started:
                started[component].remove()


def test_every_container_is_non_root_read_only_and_without_capabilities(
    fleet: dict[str, Container],
) -> None:
    for container in fleet.values():
        state = json.loads(podman("inspect", container.name).stdout)[0]
        assert state["Config"]["User"] == "65532:65532", container.name
        assert state["HostConfig"]["ReadonlyRootfs"] is True, container.name
        assert not state["EffectiveCaps"], container.name
        whoami = podman("exec", container.name, "python3", "-c", "import os; print(os.getuid())")
        assert whoami.stdout.strip() == "65532"
        write = podman("exec", container.name, "python3", "-c", "open('/opt/x', 'w')", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_the_rendered_readiness_probes_pass(fleet: dict[str, Container]) -> None:
    for name in ("pod", "router", "gateway"):
        assert fleet[name].ready(), f"{name}:\n{fleet[name].logs()}"


def test_speech_goes_app_router_pod_and_back(fleet: dict[str, Container]) -> None:
    with grpc.insecure_channel(f"{ROUTER_IP}:50051") as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        rate, samples = read_wav(stub.Synthesize(tts_pb2.TTSRequest(text=TEXT), timeout=60).audio)
        assert_speech(samples, rate, TEXT)
        chunks = list(stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT), timeout=60))
        assert_speech(pcm16(b"".join(c.chunk for c in chunks)), chunks[0].sample_rate, TEXT)


def test_the_say_command_gets_a_wav_through_the_router(
    fleet: dict[str, Container], tmp_path: Path
) -> None:
    out = tmp_path / "hello.wav"
    subprocess.run(
        [sys.executable, "-m", "ttsfleet.cli", "say", TEXT, "-o", str(out), "--address", f"{ROUTER_IP}:50051"],
        check=True, timeout=120,
    )  # fmt: skip
    rate, samples = read_wav(out.read_bytes())
    assert_speech(samples, rate, TEXT)


def _http(method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
    request = urllib.request.Request(
        f"http://{GATEWAY_POD_IP}:8080{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: bytes = response.read()
    return data


def test_a_job_goes_gateway_worker_router_pod_and_its_audio_downloads(
    fleet: dict[str, Container],
) -> None:
    """The gateway runs no jobs itself with Redis (--workers=0): the worker container does."""
    job = json.loads(_http("POST", "/v1/jobs", {"text": TEXT}))
    deadline = time.monotonic() + 120
    while (state := json.loads(_http("GET", f"/v1/jobs/{job['id']}")))["state"] != "succeeded":
        assert state["state"] in ("queued", "running"), state
        assert time.monotonic() < deadline, f"job still {state['state']}:\n{fleet['worker'].logs()}"
        time.sleep(0.5)
    rate, samples = read_wav(_http("GET", f"/v1/jobs/{job['id']}/audio"))
    assert_speech(samples, rate, TEXT)
    assert job["id"] in fleet["worker"].logs()


def test_a_broken_pod_config_exits_non_zero_naming_the_field(network: None, files: Path) -> None:
    volume_dir(files, "broken-config", {"pod.yaml": "voices: []\n"})
    done = podman(
        "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
        "--user", "65532:65532", "--volume", f"{files / 'broken-config'}:/etc/ttsfleet:ro",
        INFERENCE_IMAGE, "inference", "--config", "/etc/ttsfleet/pod.yaml",
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "defaultVoice is required" in done.stderr


def test_the_gate_image_judges_a_pod_by_ear_offline(pod: Container) -> None:
    """`ttsfleet gate` from its image, as the Job runs it (no network but the pods'): Whisper
    loads from the packaged files, hears the pod's speech, and the revision passes."""
    address = f"{POD_IP}:{objects.GRPC_PORT}"
    done = podman(
        "run", "--rm", "--network", NETWORK, "--read-only", "--cap-drop", "ALL",
        "--user", "65532:65532", "--tmpfs", "/tmp", GATE_IMAGE,
        "gate", "--canary", address, "--stable", address, "--revision", "smoke", "--text", TEXT,
        check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    verdict = Verdict.from_json(done.stdout.strip().splitlines()[-1])
    assert verdict.passed and verdict.revision == "smoke"
    assert verdict.measurements["wordErrorRate"] <= 0.3


# Stops the module's fleet (its pod included): the tests that use it come before.
def test_sigterm_drains_every_container_and_exits_0(fleet: dict[str, Container]) -> None:
    """A stream in flight when its pod gets SIGTERM still completes; then each exits 0."""
    text = " ".join([TEXT] * 6)
    with grpc.insecure_channel(f"{ROUTER_IP}:50051") as channel:
        stream = tts_pb2_grpc.TTSServiceStub(channel).StreamSynthesize(
            tts_pb2.TTSRequest(text=text), timeout=120
        )
        first = next(stream)
        podman("kill", "--signal", "TERM", fleet["pod"].name)
        rest = list(stream)
    assert_speech(pcm16(b"".join(c.chunk for c in (first, *rest))), first.sample_rate, text)
    assert int(podman("wait", fleet["pod"].name, timeout=90).stdout) == 0, fleet["pod"].logs()
    for name in ("worker", "gateway", "router"):
        assert fleet[name].terminate(grace=60) == 0, fleet[name].logs()


def test_every_control_plane_command_starts_in_its_image(network: None) -> None:
    """The chart runs these from the control-plane image: each must at least load."""
    for command in ("operator", "router", "gateway", "worker", "mcp"):
        done = podman(
            "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
            "--user", "65532:65532", CONTROL_PLANE_IMAGE, command, "--help",
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
