"""Discovery without a cluster: the static list, and how pools and slices become a topology.

The watch loop's recovery (410 Gone, broken connections) runs here against a
scripted API; tests/router/test_discovery_kubernetes.py follows real objects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from ttsfleet.router.discovery import Topology
from ttsfleet.router.discovery.kubernetes import _Informer, slice_addresses, topology
from ttsfleet.router.discovery.static import StaticDiscovery


def pool(
    name: str, voices: list[str], default: str | None = None, created: str = "2026-01-01T00:00:00Z"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"voices": voices}
    if default:
        spec["defaultVoice"] = default
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": spec}


def endpoint_slice(
    pool_name: str, *endpoints: tuple[str, bool | None], port_name: str = "grpc"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{pool_name}-x", "labels": {"ttsfleet.dev/pool": pool_name}},
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": 9090}, {"name": port_name, "port": 50051}],
        "endpoints": [
            {"addresses": [ip], **({} if ready is None else {"conditions": {"ready": ready}})}
            for ip, ready in endpoints
        ],
    }


def test_static_entries_group_into_pools() -> None:
    published: list[Topology] = []
    discovery = StaticDiscovery(
        [("127.0.0.1:1", "standard", ["joe"]), ("127.0.0.1:2", "standard", ["joe"])], "joe"
    )
    discovery.update([("127.0.0.1:3", "premium", ["amy"])])
    discovery._publish = published.append
    discovery.update([("127.0.0.1:4", "premium", ["amy", "joe"])])
    (latest,) = published
    assert latest.default_voice == "joe"
    assert latest.pools["premium"].addresses == {"127.0.0.1:4"}
    assert latest.pools["premium"].voices == {"amy", "joe"}


def test_only_ready_endpoints_on_the_grpc_port() -> None:
    found = slice_addresses(
        endpoint_slice("p", ("203.0.113.1", True), ("203.0.113.2", False), ("203.0.113.3", None))
    )
    assert found == {"203.0.113.1:50051", "203.0.113.3:50051"}
    assert slice_addresses(endpoint_slice("p", ("203.0.113.1", True), port_name="http")) == set()


def test_ipv6_addresses_are_bracketed() -> None:
    ipv6 = endpoint_slice("p", ("2001:db8::1", True)) | {"addressType": "IPv6"}
    assert slice_addresses(ipv6) == {"[2001:db8::1]:50051"}


def test_pools_and_slices_join_by_pool_label() -> None:
    found = topology(
        [
            pool("standard", ["joe", "amy"], default="amy"),
            pool("premium", ["kim"], created="2026-02-01T00:00:00Z"),
        ],
        [
            endpoint_slice("standard", ("203.0.113.1", True)),
            endpoint_slice("standard", ("203.0.113.2", True)),
            endpoint_slice("unrelated", ("203.0.113.9", True)),
        ],
    )
    assert found.pools["standard"].addresses == {"203.0.113.1:50051", "203.0.113.2:50051"}
    assert found.pools["standard"].voices == {"joe", "amy"}
    assert found.pools["premium"].addresses == frozenset()
    # No default given: the oldest pool's default decides, whatever pools come later.
    assert found.default_voice == "amy"
    same_age = topology([pool("b", ["kim"]), pool("a", ["lee", "max"])], [])
    assert same_age.default_voice == "lee", "oldest, then first by name; else its first voice"
    assert topology([pool("standard", ["joe"])], [], "amy").default_voice == "amy"


class _Response:
    """What the Kubernetes client returns with _preload_content=False."""

    def __init__(self, body: Any, lines: list[dict[str, Any]] | None = None) -> None:
        self.data = json.dumps(body).encode()
        self.status = 200
        self._lines = lines or []

    def stream(self, amt: Any = None, decode_content: Any = None) -> Iterator[bytes]:
        for line in self._lines:
            yield json.dumps(line).encode() + b"\n"

    def close(self) -> None:
        return None

    def release_conn(self) -> None:
        return None


class _ScriptedApi:
    """Answers list and watch calls from a script; after the script, stops the informer."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []
        self.informer: _Informer | None = None

    def __call__(self, **kwargs: Any) -> _Response:
        self.calls.append(kwargs)
        if not self.script:
            assert self.informer is not None
            self.informer.stop()
            return _Response({}, [])
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def listing(version: str, *names: str) -> _Response:
    items = [{"metadata": {"name": name, "resourceVersion": version}} for name in names]
    return _Response({"metadata": {"resourceVersion": version}, "items": items})


def events(*lines: dict[str, Any]) -> _Response:
    return _Response({}, list(lines))


def event(kind: str, name: str, version: str) -> dict[str, Any]:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


def test_informer_relists_after_gone_and_after_errors() -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old"}}
    api = _ScriptedApi(
        [
            listing("10", "a"),
            events(event("ADDED", "b", "11"), event("DELETED", "a", "12")),  # server ends the watch
            events(event("MODIFIED", "b", "13"), gone),  # the version expired: list again
            listing("20", "b", "c"),
            ApiException(status=500, reason="apiserver restarting"),  # watch failed: list again
            listing("30", "c"),
        ]
    )
    seen: list[set[str]] = []
    informer = _Informer("Thing", api, lambda: seen.append(set(informer.objects)))
    api.informer = informer
    runner = threading.Thread(target=informer.run, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    assert seen == [{"a"}, {"a", "b"}, {"b"}, {"b"}, {"b", "c"}, {"c"}]
    watches = [call for call in api.calls if call.get("watch")]
    # Each watch resumes where the last list or event left off.
    assert [w["resource_version"] for w in watches[:3]] == ["10", "12", "20"]
