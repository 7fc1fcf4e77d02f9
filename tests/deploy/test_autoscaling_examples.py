"""The KEDA and HPA examples of docs/autoscaling.md name metrics the fleet really exports.

KEDA's CRDs are not available here, so its ScaledObject is checked for what
can be checked without them; the HPA is also validated by the API server
(tests/operator/test_validation.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ttsfleet.inference.metrics import InferenceMetrics
from ttsfleet.router.metrics import RouterMetrics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "autoscaling"


def _exported() -> set[str]:
    names = set()
    for registry in (RouterMetrics().registry, InferenceMetrics().registry):
        names |= {metric.name for metric in registry.collect()}
    return names


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


def test_the_keda_query_sums_exported_demand_and_may_sleep_at_zero() -> None:
    scaled = _load("keda.yaml")
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "TTSPool"
    assert scaled["spec"]["minReplicaCount"] == 0
    [trigger] = scaled["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    named = set(re.findall(r"ttsfleet_[a-z_]+", query))
    assert named == {
        "ttsfleet_inference_queued_audio_seconds",
        "ttsfleet_router_held_audio_seconds",
    }
    assert named <= _exported()


def test_the_docs_show_the_examples_as_they_are() -> None:
    docs = (ROOT / "docs" / "autoscaling.md").read_text()
    for name in ("hpa.yaml", "keda.yaml"):
        body = (EXAMPLES / name).read_text().split("\n", 1)[1]
        assert body.strip().split("apiVersion", 1)[1] in docs, name
