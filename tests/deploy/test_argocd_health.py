"""Argo CD's view of ttsfleet: the health checks run in a real Lua 5.1, and the GitOps manifests.

Argo CD runs resource health checks in gopher-lua (Lua 5.1) with only the
base, string, table and math libraries and the resource as ``obj``; here the
same script runs in Lua 5.1 through lupa, in an environment holding only
those. Pool statuses come from the operator's own status code, so the check
is tested against what the operator really writes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import binaries
from lupa import lua51

from ttsfleet.operator.apply import FIELD_MANAGER
from ttsfleet.operator.status import Observed, Problem, pool_status
from ttsfleet.operator.voice_status import VoiceReport, voice_status
from ttsfleet.router.discovery.kubernetes import FIELD_MANAGER as ROUTER_FIELD_MANAGER
from ttsfleet.voices.errors import VoiceSourceError

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
HEALTH_SCRIPT = ARGOCD / "ttsfleet-health.lua"
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
NOW = "2026-01-01T00:00:00Z"

# Loads a script as Argo CD does: a chunk that sees `obj` and the safe libraries only.
SANDBOX = """
function(source, obj)
  local chunk, problem = loadstring(source, "health.lua")
  if chunk == nil then error(problem) end
  setfenv(chunk, {
    obj = obj, ipairs = ipairs, pairs = pairs, next = next, type = type,
    tostring = tostring, tonumber = tonumber, error = error, pcall = pcall,
    select = select, unpack = unpack, string = string, table = table, math = math,
  })
  local hs = chunk()
  return hs.status, hs.message
end
"""


@pytest.fixture(scope="module")
def health() -> Callable[[dict[str, Any]], tuple[str, str]]:
    """The health check as a function of a resource, evaluated by Lua 5.1."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    run = lua.eval(SANDBOX)
    source = HEALTH_SCRIPT.read_text()

    def check(resource: dict[str, Any]) -> tuple[str, str]:
        status, message = run(source, lua.table_from(resource, recursive=True))
        return str(status), str(message)

    return check


def deployment(
    *, replicas: int, updated: int, ready: int, conditions: tuple[dict[str, str], ...] = ()
) -> dict[str, Any]:
    """A Deployment as the operator observes it (generation 1, observed)."""
    status = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": list(conditions),
    }
    return {"metadata": {"generation": 1}, "status": status}


def pool(
    desired: int = 2,
    deployment: dict[str, Any] | None = None,
    problem: Problem | None = None,
    generation: int = 1,
    observed_generation: int = 1,
) -> dict[str, Any]:
    """A TTSPool whose status is what the operator computes from these observations."""
    observed = Observed(
        desired=desired,
        selector="app.kubernetes.io/name=ttsfleet-inference,ttsfleet.dev/pool=english",
        service="english-inference",
        deployment=deployment,
        problem=problem,
    )
    status = pool_status(observed, {}, observed_generation=observed_generation, now=NOW)
    return {
        "apiVersion": "ttsfleet.dev/v1alpha1",
        "kind": "TTSPool",
        "metadata": {"name": "english", "namespace": "tts", "generation": generation},
        "spec": {"voices": ["joe"], "replicas": desired},
        "status": status,
    }


def voice(outcome: VoiceReport | VoiceSourceError | None, generation: int = 1) -> dict[str, Any]:
    """A TTSVoice with the status the operator writes for this outcome of its check."""
    status = voice_status(outcome, {}, generation=1, pools=["english"], now=NOW)
    return {"kind": "TTSVoice", "metadata": {"generation": generation}, "status": status}


STUCK = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
QUOTA = {
    "type": "ReplicaFailure",
    "status": "True",
    "reason": "FailedCreate",
    "message": 'pods "english-inference-x" is forbidden: exceeded quota: gpus',
}
CASES = {
    "new pool, no status yet": (
        {"kind": "TTSPool", "metadata": {"generation": 1}, "spec": {"replicas": 2}},
        "Progressing",
        "waiting for the operator",
    ),
    "Deployment being created": (pool(deployment=None), "Progressing", "being created"),
    "rolling out": (
        pool(deployment=deployment(replicas=3, updated=1, ready=2)),
        "Progressing",
        "1/2 updated",
    ),
    "every replica ready": (
        pool(deployment=deployment(replicas=2, updated=2, ready=2)),
        "Healthy",
        "2/2 replicas ready",
    ),
    "a voice is missing": (
        pool(problem=Problem("VoiceNotFound", "TTSVoice amy does not exist in namespace tts")),
        "Degraded",
        "TTSVoice amy does not exist",
    ),
    "rollout stuck": (
        pool(deployment=deployment(replicas=3, updated=1, ready=2, conditions=(STUCK,))),
        "Degraded",
        "exceeded its deadline",
    ),
    "pods refused by a quota": (
        pool(deployment=deployment(replicas=0, updated=0, ready=0, conditions=(QUOTA,))),
        "Degraded",
        "exceeded quota: gpus",
    ),
    "scaled to zero": (
        pool(desired=0, deployment=deployment(replicas=0, updated=0, ready=0)),
        "Suspended",
        "no replicas",
    ),
    "spec changed, operator not caught up": (
        pool(deployment=deployment(replicas=2, updated=2, ready=2), generation=2),
        "Progressing",
        "generation 2",
    ),
    "voice not checked yet": (
        {"kind": "TTSVoice", "metadata": {"generation": 3}, "spec": {"source": {"package": "p"}}},
        "Progressing",
        "waiting for the operator to check",
    ),
    "voice being fetched": (voice(None), "Progressing", "fetching and checking"),
    "voice with a wrong digest": (
        voice(
            VoiceSourceError("DigestMismatch", "x has sha256 1, but spec says 2", permanent=True)
        ),
        "Degraded",
        "has sha256 1, but spec says 2",
    ),
    "voice verified": (
        voice(VoiceReport("https://hub/joe.onnx", "Verified", "fetched and verified")),
        "Healthy",
        "fetched and verified",
    ),
    "voice edited, not checked again yet": (
        voice(VoiceReport("https://hub/joe.onnx", "Verified", "ok"), generation=2),
        "Progressing",
        "generation 2",
    ),
}


@pytest.mark.parametrize(("resource", "status", "message"), CASES.values(), ids=CASES.keys())
def test_health_of_every_state(
    health: Callable[[dict[str, Any]], tuple[str, str]],
    resource: dict[str, Any],
    status: str,
    message: str,
) -> None:
    assert health(resource)[0] == status
    assert message in health(resource)[1]


def test_every_argo_health_state_but_missing_and_unknown_is_reached(
    health: Callable[[dict[str, Any]], tuple[str, str]],
) -> None:
    """Missing and Unknown are Argo CD's own, for absent objects and failed checks."""
    reached = {health(resource)[0] for resource, _, _ in CASES.values()}
    assert reached == ARGO_HEALTH - {"Missing", "Unknown"}


# -- the manifests Argo CD reads ----------------------------------------------


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize``, as Argo CD builds a kustomization (needs the built kubectl)."""
    kubectl = binaries.cache_bin_dir() / "kubectl"
    if not kubectl.is_file():
        pytest.skip("kubectl is not built yet: bash tests/cluster/build.sh")
    out = subprocess.run(
        [str(kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_argocd_cm_carries_the_script_for_both_kinds() -> None:
    (config_map,) = kustomize(ARGOCD)
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert config_map["metadata"]["namespace"] == "argocd"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    script = HEALTH_SCRIPT.read_text()
    assert config_map["data"] == {
        "resource.customizations.health.ttsfleet.dev_TTSPool": script,
        "resource.customizations.health.ttsfleet.dev_TTSVoice": script,
    }


def _wave(manifest: dict[str, Any]) -> int:
    annotations = manifest["metadata"].get("annotations") or {}
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def test_voices_sync_before_pools_and_after_the_chart() -> None:
    fleet = kustomize(ARGOCD / "fleet")
    waves = {
        kind: {_wave(m) for m in fleet if m["kind"] == kind} for kind in ("TTSVoice", "TTSPool")
    }
    assert len(waves["TTSVoice"]) == len(waves["TTSPool"]) == 1
    assert 0 < min(waves["TTSVoice"]) < min(waves["TTSPool"])
    kept = [m for m in fleet if "ttsfleet.dev/owner" in m["metadata"].get("annotations", {})]
    assert kept, "the wave patch must merge into existing annotations, not replace them"


def test_autoscaled_pools_leave_replicas_out_of_git() -> None:
    for manifest in kustomize(ARGOCD / "fleet"):
        if manifest["kind"] == "TTSPool" and manifest["spec"].get("autoscaling", {}).get("enabled"):
            assert "replicas" not in manifest["spec"], manifest["metadata"]["name"]


def test_the_application_syncs_chart_and_fleet_and_ignores_scalers_fields() -> None:
    application = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert application["apiVersion"] == "argoproj.io/v1alpha1"
    paths = [source["path"] for source in application["spec"]["sources"]]
    assert paths == ["charts/ttsfleet", "deploy/argocd/fleet"]
    assert all((ROOT / path).is_dir() for path in paths)
    (ignored,) = application["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"]) == ("ttsfleet.dev", "TTSPool")
    assert {FIELD_MANAGER, ROUTER_FIELD_MANAGER} <= set(ignored["managedFieldsManagers"])
    assert "RespectIgnoreDifferences=true" in application["spec"]["syncPolicy"]["syncOptions"]
