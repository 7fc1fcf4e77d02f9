"""The tools' answers as pure functions over hand-written fleet states."""

from __future__ import annotations

from typing import Any

import pytest

from ttsfleet.mcp import tools


def pod(name: str, pool: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"ttsfleet.dev/pool": pool}},
        "status": status,
    }


def pool(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"voices": ["joe"], "replicas": 1},
        "status": status,
    }


def test_a_pool_without_status_says_the_operator_has_not_reported() -> None:
    summary = tools.pool_summary(pool("new"), [])
    assert summary["notReadyBecause"] == [
        "the operator has not reported a status for this pool yet"
    ]


def test_not_ready_names_degraded_and_held_back_containers() -> None:
    conditions = [
        {"type": "Ready", "status": "False", "reason": "ReplicasNotReady", "message": "0/1"},
        {"type": "Degraded", "status": "True", "reason": "RolloutStuck", "message": "deadline"},
    ]
    waiting = {"name": "inference", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    pods = [pod("a-1", "a", containerStatuses=[waiting]), pod("b-1", "b")]
    summary = tools.pool_summary(pool("a", conditions=conditions), pods)
    assert summary["notReadyBecause"] == [
        "ReplicasNotReady: 0/1",
        "Degraded RolloutStuck: deadline",
        "pod a-1 container inference: ImagePullBackOff",
    ]


def test_request_figures_count_codes_and_latency_for_the_pool_only() -> None:
    records = [
        {"message": "request finished", "pool": "a", "code": "OK", "seconds": s, "attempts": 1}
        for s in (0.1, 0.2, 0.3, 0.4)
    ] + [
        {"message": "request finished", "pool": "a", "code": "UNAVAILABLE", "attempts": 2},
        {"message": "request finished", "pool": "b", "code": "OK", "seconds": 9.0},
        {"message": "retrying on another pod", "pool": "a"},
    ]
    figures = tools.request_figures(records, "a")
    assert figures["requests"] == 5 and figures["retried"] == 1
    assert figures["codes"] == {"OK": 4, "UNAVAILABLE": 1} and figures["errorRate"] == 0.2
    assert figures["latencySeconds"] == {"p50": 0.2, "p95": 0.4, "max": 0.4}


def test_pool_events_match_the_deployments_objects_not_a_prefix_sibling() -> None:
    deployments = [{"metadata": {"name": "en-inference"}}]
    events = [
        {"involvedObject": {"kind": "ReplicaSet", "name": "en-inference-5d9f"}, "reason": "A"},
        {"involvedObject": {"kind": "Pod", "name": "en-inference-5d9f-x2k"}, "reason": "B"},
        {"involvedObject": {"kind": "TTSPool", "name": "en"}, "reason": "C"},
        {"involvedObject": {"kind": "Pod", "name": "en-gb-inference-5d9f-x2k"}, "reason": "D"},
    ]
    found = tools.pool_events("en", events, [], deployments, limit=10)
    assert sorted(e["reason"] for e in found["events"]) == ["A", "B", "C"]


def test_scale_bounds_are_the_pools_own() -> None:
    body = pool("a") | {"spec": {"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}}
    assert tools.scale_bounds(body, 5) == (2, 5)
    with pytest.raises(tools.BoundsError, match=r"outside pool a's bounds 2\.\.5"):
        tools.scale_bounds(body, 1)


def test_restarts_say_how_the_last_run_ended() -> None:
    ended = {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-30T17:00:00Z"}
    statuses = [
        {"name": "inference", "restartCount": 3, "lastState": {"terminated": ended}},
        {"name": "sidecar", "restartCount": 0},
    ]
    assert tools.restarts([pod("a-1", "a", containerStatuses=statuses)]) == [
        {"pod": "a-1", "container": "inference", "restarts": 3, "lastExit": ended}
    ]
