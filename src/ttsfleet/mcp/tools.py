"""What each tool answers, as pure functions over state already fetched.

Kubernetes, gRPC and files stay at the edges (``kube``, ``load``,
``sources``); these functions only read plain dicts, so each answer can be
checked against a fleet state written by hand.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ttsfleet.manifests import POOL_LABEL

Object = Mapping[str, Any]
# The router's log line for a finished request (router/forwarder.py).
FINISHED = "request finished"
RETRYING = "retrying on another pod"


class BoundsError(ValueError):
    """A scale outside the pool's own bounds."""


def _condition(body: Object, kind: str) -> Object:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def _pool_of(obj: Object) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL, ""))


def unschedulable(pods: Iterable[Object]) -> list[dict[str, str]]:
    """Pods the scheduler could not place, with its own message (e.g. "Insufficient nvidia.com/gpu")."""
    found = []
    for pod in pods:
        scheduled = _condition(pod, "PodScheduled")
        if scheduled.get("status") == "False":
            found.append(
                {
                    "pod": pod["metadata"]["name"],
                    "reason": scheduled.get("reason", ""),
                    "message": scheduled.get("message", ""),
                }
            )
    return found


def _waiting_containers(pods: Iterable[Object]) -> list[str]:
    """Containers held back (image pulls, crash loops), as one line each."""
    lines = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
                lines.append(
                    f"pod {pod['metadata']['name']} container {status['name']}: "
                    f"{waiting['reason']} {waiting.get('message', '')}".strip()
                )
    return lines


def pool_summary(pool: Object, pods: Sequence[Object]) -> dict[str, Any]:
    """One pool: replicas, queue depth, conditions and, when not Ready, every reason found."""
    name = pool["metadata"]["name"]
    spec, status = pool.get("spec") or {}, pool.get("status") or {}
    own = [p for p in pods if _pool_of(p) == name]
    ready = _condition(pool, "Ready")
    summary: dict[str, Any] = {
        "name": name,
        "voices": list(spec.get("voices") or []),
        "ready": ready.get("status") == "True",
        "replicas": {
            "desired": spec.get("replicas", 1),
            "current": status.get("replicas", 0),
            "ready": status.get("readyReplicas", 0),
            "updated": status.get("updatedReplicas", 0),
        },
        "queueDepth": status.get("queueDepth"),
        "inFlight": status.get("inFlight"),
        "autoscaling": spec.get("autoscaling") or {"enabled": False},
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
        ],
        "unschedulablePods": unschedulable(own),
    }
    if not summary["ready"]:
        summary["notReadyBecause"] = _not_ready_reasons(pool, own, summary)
    return summary


def _not_ready_reasons(pool: Object, pods: Sequence[Object], summary: Object) -> list[str]:
    ready, degraded = _condition(pool, "Ready"), _condition(pool, "Degraded")
    if not ready:
        return ["the operator has not reported a status for this pool yet"]
    reasons = [f"{ready.get('reason')}: {ready.get('message')}"]
    if degraded.get("status") == "True":
        reasons.append(f"Degraded {degraded.get('reason')}: {degraded.get('message')}")
    reasons += [
        f"pod {p['pod']} cannot be scheduled: {p['message']}" for p in summary["unschedulablePods"]
    ]
    return reasons + _waiting_containers(pods)


def overview(
    namespace: str, pools: Sequence[Object], voices: Sequence[Object], pods: Sequence[Object]
) -> dict[str, Any]:
    """Every pool and voice of the namespace, and which voices pools name but nobody defined."""
    summaries = [
        pool_summary(pool, pods) for pool in sorted(pools, key=lambda p: p["metadata"]["name"])
    ]
    defined = {v["metadata"]["name"]: v for v in voices}
    for summary in summaries:
        missing = [v for v in summary["voices"] if v not in defined]
        if missing:
            summary["missingVoices"] = missing
    return {
        "namespace": namespace,
        "pools": summaries,
        "voices": [
            {
                "name": name,
                "engine": (voice.get("spec") or {}).get("engine", "piper-onnx"),
                "language": (voice.get("spec") or {}).get("language", ""),
                "pools": [s["name"] for s in summaries if name in s["voices"]],
            }
            for name, voice in sorted(defined.items())
        ],
    }


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[max(math.ceil(fraction * len(values)) - 1, 0)]


def request_figures(records: Iterable[Object], pool: str) -> dict[str, Any]:
    """Counts, status codes and latency of the pool's finished requests in the router's log."""
    finished = [r for r in records if r.get("message") == FINISHED and r.get("pool") == pool]
    if not finished:
        return {"requests": 0}
    codes = Counter(str(r.get("code", "")) for r in finished)
    seconds = sorted(float(r.get("seconds", 0.0)) for r in finished if r.get("code") == "OK")
    figures: dict[str, Any] = {
        "requests": len(finished),
        "codes": dict(sorted(codes.items())),
        "errorRate": round(1 - codes.get("OK", 0) / len(finished), 4),
        "retried": sum(1 for r in finished if int(r.get("attempts", 1)) > 1),
        "from": finished[0].get("time"),
        "to": finished[-1].get("time"),
    }
    if seconds:
        figures["latencySeconds"] = {
            "p50": _percentile(seconds, 0.5),
            "p95": _percentile(seconds, 0.95),
            "max": seconds[-1],
        }
    return figures


def load_figures(
    pool: Object, reports: Mapping[str, Mapping[str, Any] | None], records: Iterable[Object] | None
) -> dict[str, Any]:
    """A pool's live load (each pod's own report), its status figures and its recent requests."""
    answered = [r for r in reports.values() if r is not None]
    status = pool.get("status") or {}
    return {
        "pool": pool["metadata"]["name"],
        "pods": [{"pod": name, "report": report} for name, report in sorted(reports.items())],
        "live": {
            "reportingPods": len(answered),
            "pods": len(reports),
            "queueDepth": sum(int(r.get("queueDepth", 0)) for r in answered),
            "inFlight": sum(int(r.get("inFlight", 0)) for r in answered),
            "queueCapacity": sum(int(r.get("queueCapacity", 0)) for r in answered),
            "queuedAudioSeconds": round(
                sum(float(r.get("queuedAudioSeconds", 0.0)) for r in answered), 3
            ),
            "draining": sorted(n for n, r in reports.items() if r and r.get("draining")),
        },
        "status": {k: status.get(k) for k in ("queueDepth", "inFlight", "reportingReplicas")},
        "recentRequests": (
            request_figures(records, pool["metadata"]["name"])
            if records is not None
            else "no router log configured (--router-log): no latency or error figures"
        ),
    }


def _event_time(event: Object) -> str:
    return str(
        event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    )


def pool_events(
    pool: str,
    events: Iterable[Object],
    pods: Sequence[Object],
    deployments: Sequence[Object],
    limit: int,
) -> dict[str, Any]:
    """The newest events about the pool, its Deployments, ReplicaSets and pods; pod restarts."""
    names = {d["metadata"]["name"] for d in deployments}
    # A Deployment's ReplicaSets and pods are named <deployment>-<hash>[-<suffix>].
    owned = re.compile(
        "^(" + "|".join(re.escape(n) for n in sorted(names)) + r")-[a-z0-9]+(-[a-z0-9]+)?$"
    )
    pod_names = {p["metadata"]["name"] for p in pods}

    def about_pool(event: Object) -> bool:
        involved = event.get("involvedObject") or {}
        name, kind = involved.get("name", ""), involved.get("kind", "")
        return (
            (kind == "TTSPool" and name == pool)
            or name in names
            or name in pod_names
            or bool(names and owned.match(name))
        )

    chosen = sorted(filter(about_pool, events), key=_event_time, reverse=True)[:limit]
    return {
        "pool": pool,
        "events": [
            {
                "time": _event_time(e),
                "type": e.get("type"),
                "reason": e.get("reason"),
                "object": f"{(e.get('involvedObject') or {}).get('kind')}/{(e.get('involvedObject') or {}).get('name')}",
                "message": e.get("message"),
                "count": e.get("count"),
            }
            for e in chosen
        ],
        "restarts": restarts(pods),
    }


def restarts(pods: Iterable[Object]) -> list[dict[str, Any]]:
    """Containers that restarted, with how their last run ended."""
    found = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("restartCount", 0) > 0:
                ended = (status.get("lastState") or {}).get("terminated") or {}
                found.append(
                    {
                        "pod": pod["metadata"]["name"],
                        "container": status.get("name"),
                        "restarts": status["restartCount"],
                        "lastExit": {k: ended.get(k) for k in ("reason", "exitCode", "finishedAt")},
                    }
                )
    return found


def router_path(records: Sequence[Object]) -> dict[str, Any]:
    """A request's path through the router from its log lines: pods tried, retries, outcome."""
    finished = next((r for r in reversed(records) if r.get("message") == FINISHED), None)
    return {
        "retries": [
            {"pod": r.get("pod"), "code": r.get("code"), "time": r.get("time")}
            for r in records
            if r.get("message") == RETRYING
        ],
        "finished": None
        if finished is None
        else {
            k: finished.get(k)
            for k in ("time", "method", "voice", "pool", "pod", "code", "attempts", "seconds")
        },
        "lines": len(records),
    }


def scale_bounds(pool: Object, replicas: int) -> tuple[int, int]:
    """The pool's own min/max (spec.autoscaling, CRD defaults 1..4); raises outside them."""
    scaling = (pool.get("spec") or {}).get("autoscaling") or {}
    low, high = int(scaling.get("minReplicas", 1)), int(scaling.get("maxReplicas", 4))
    if not low <= replicas <= high:
        raise BoundsError(
            f"{replicas} replicas is outside pool {pool['metadata']['name']}'s bounds {low}..{high}"
        )
    return low, high
