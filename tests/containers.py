"""Kubernetes container specs run as podman containers, as a kubelet would run them.

The smoke tests take the command, args, env, volumes and security settings
from what the operator and the chart render and translate each into podman
flags, so the containers that start are the ones users deploy. Containers
sit on a bridge network in 198.18.0.0/24 (a benchmarking range, never a
private one) that the tests create, each at a fixed address, so every pod
keeps its real ports. Readiness probes are checked as a kubelet checks
them: gRPC health, HTTP GET, or a TCP connect on the probe's port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TTSFLEET_CACHE", Path.home() / ".cache" / "ttsfleet")) / "images"
NETWORK, SUBNET, GATEWAY_IP = "ttsfleet-smoke", "198.18.0.0/24", "198.18.0.1"
Spec = Mapping[str, Any]


def podman_env() -> dict[str, str]:
    """The environment podman needs here (runc, ulimits): docker/podman-env.sh writes it."""
    return {**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf")}


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


def build_images() -> None:
    """docker/images.sh: a no-op for the base when cached; layers make rebuilds quick."""
    subprocess.run(["bash", str(ROOT / "docker" / "images.sh")], check=True, timeout=1800)


def create_network() -> None:
    podman("network", "rm", "--force", NETWORK, check=False)
    podman("network", "create", "--subnet", SUBNET, "--gateway", GATEWAY_IP, NETWORK)


def remove_network() -> None:
    podman("network", "rm", "--force", NETWORK, check=False)


@dataclass
class Container:
    """A running container and the Kubernetes spec it was started from."""

    name: str
    ip: str
    spec: Spec

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def terminate(self, grace: float) -> int:
        """SIGTERM, as a kubelet sends it; the exit code once the container is gone."""
        podman("kill", "--signal", "TERM", self.name)
        code = podman("wait", self.name, timeout=grace + 30).stdout.strip()
        return int(code)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)

    def port(self, name_or_number: str | int) -> int:
        """A port of the spec by name (as probes name them) or number."""
        if isinstance(name_or_number, int):
            return name_or_number
        ports = {p["name"]: p["containerPort"] for p in self.spec.get("ports", ())}
        return int(ports[name_or_number])

    def ready(self) -> bool:
        """Whether the spec's readiness probe passes now."""
        probe = self.spec["readinessProbe"]
        if "grpc" in probe:
            return grpc_serving(f"{self.ip}:{self.port(probe['grpc']['port'])}")
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{self.ip}:{self.port(get['port'])}{get['path']}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return 200 <= response.status < 400
            except OSError:
                return False
        tcp = probe["tcpSocket"]
        try:
            socket.create_connection((self.ip, self.port(tcp["port"])), timeout=2).close()
        except OSError:
            return False
        return True


def grpc_serving(address: str) -> bool:
    """The gRPC health check a kubelet's grpc probe makes (service "")."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _env_value(variable: Spec, pod_name: str) -> str:
    if "value" in variable:
        return str(variable["value"])
    source = variable["valueFrom"]
    if "fieldRef" in source:
        field = source["fieldRef"]["fieldPath"]
        return {"metadata.name": pod_name, "metadata.namespace": "smoke"}[field]
    if "resourceFieldRef" in source:  # with no limit set, the kubelet gives the node's cores
        return str(os.cpu_count() or 1)
    raise ValueError(f"env {variable['name']}: no way to fill {source}")


def _volume_flags(spec: Spec, volumes: Mapping[str, Spec], files: Path) -> list[str]:
    """Each mount as the kubelet makes it: configMap/secret/claim from host dirs, emptyDir tmpfs."""
    flags = []
    for mount in spec.get("volumeMounts", ()):
        volume = volumes[mount["name"]]
        target = mount["mountPath"]
        if "emptyDir" in volume:
            flags += ["--mount", f"type=tmpfs,destination={target},tmpfs-mode=1777"]
            continue
        source = files / mount["name"]
        if not source.is_dir():
            raise FileNotFoundError(f"volume {mount['name']}: prepare {source} first")
        options = "ro" if mount.get("readOnly") else "rw"
        flags += ["--volume", f"{source}:{target}:{options}"]
    return flags


def run(
    name: str,
    ip: str,
    image: str,
    pod: Spec,
    files: Path,
    container: int = 0,
) -> Container:
    """Starts one container of a pod spec; volume `v` comes from `files / v` (or is a tmpfs)."""
    spec = pod["containers"][container]
    security, pod_security = spec.get("securityContext", {}), pod.get("securityContext", {})
    user = security.get("runAsUser", pod_security["runAsUser"])
    group = security.get("runAsGroup", pod_security.get("runAsGroup", user))
    flags = ["--name", name, "--network", NETWORK, "--ip", ip, "--user", f"{user}:{group}"]
    if security.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]  # only the spec's volumes are writable
    if "ALL" in security.get("capabilities", {}).get("drop", ()):
        flags += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for variable in spec.get("env", ()):
        flags += ["--env", f"{variable['name']}={_env_value(variable, name)}"]
    volumes = {v["name"]: v for v in pod.get("volumes", ())}
    flags += _volume_flags(spec, volumes, files)
    if "command" in spec:
        flags += ["--entrypoint", json.dumps(spec["command"])]
    podman("rm", "--force", "--time", "0", name, check=False)
    podman("run", "--detach", *flags, image, *spec.get("args", ()))
    return Container(name, ip, spec)


def volume_dir(files: Path, name: str, data: Mapping[str, str] | None = None) -> Path:
    """A host directory for volume `name`, writable by the pods' uid, with `data` as files."""
    folder = files / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for key, text in (data or {}).items():
        (folder / key).write_text(text)
    for path in (folder, *folder.iterdir()):
        os.chown(path, 65532, 65532)
    return folder
