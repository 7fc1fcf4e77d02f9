"""Operator benchmark on the real test control plane; prints one table.

    python tests/bench/bench_operator.py [--pools 200] [--samples 30]

Measures, with the operator running as its least-privilege ServiceAccount
(load reads off, so nothing but the API server on 127.0.0.1 is dialled):

- one pool at a time: apply → Deployment created, apply → pool Ready
  (p50/p99; Ready includes the scheduler and kwok starting the fake pods);
- many pools at once: apply → every Deployment created, → every pool Ready;
- a restart with that many pools: start → every pool reconciled again;
- the operator's resident memory idle, and with every pool.

The machine is shared and noisy: compare the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: cluster, operator_harness

import yaml
from cluster.control_plane import ControlPlane
from cluster.polling import wait_until
from kubernetes import client, watch
from operator_harness import (
    GROUP,
    VERSION,
    OperatorProcess,
    install_api,
    operator_kubeconfig,
    pool_yaml,
    voice_yaml,
)

NAMESPACE = "bench"


class Observer:
    """Watches (in threads) when each Deployment first appears and each pool first turns Ready."""

    def __init__(self, api: Any) -> None:
        self.deployed: dict[str, float] = {}
        self.pods_ready: dict[str, float] = {}  # the Deployment's pods all ready
        self.ready: dict[str, float] = {}  # the pool's Ready condition True
        self._stop = threading.Event()
        apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
        self._threads = [
            threading.Thread(
                target=self._watch,
                args=(apps.list_namespaced_deployment, (NAMESPACE,), self._deployment),
                daemon=True,
            ),
            threading.Thread(
                target=self._watch,
                args=(
                    custom.list_namespaced_custom_object,
                    (GROUP, VERSION, NAMESPACE, "ttspools"),
                    self._pool,
                ),
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _watch(
        self, lister: Callable[..., Any], args: tuple[str, ...], record: Callable[[Any], None]
    ) -> None:
        while not self._stop.is_set():
            for event in watch.Watch().stream(lister, *args, timeout_seconds=5):
                record(event["object"])
                if self._stop.is_set():
                    return

    def _deployment(self, deployment: Any) -> None:
        pool = deployment.metadata.labels.get("ttsfleet.dev/pool", "")
        now = time.monotonic()
        self.deployed.setdefault(pool, now)
        if (deployment.status.ready_replicas or 0) >= deployment.spec.replicas > 0:
            self.pods_ready.setdefault(pool, now)

    def _pool(self, pool: dict[str, Any]) -> None:
        conditions = (pool.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            self.ready.setdefault(pool["metadata"]["name"], time.monotonic())

    def stop(self) -> None:
        self._stop.set()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def create_pool(custom: Any, name: str) -> None:
    body = yaml.safe_load(pool_yaml(name, ["joe"]))
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "ttspools", body)


def start_operator(plane: ControlPlane, log_dir: Path, index: int) -> OperatorProcess:
    kubeconfig = operator_kubeconfig(plane, NAMESPACE)
    operator = OperatorProcess(
        kubeconfig,
        log_dir / f"operator-{index}.log",
        ["--namespace", NAMESPACE, "--interval", "10"],
    )
    wait_until(lambda: "Resuming operations" in operator.log(), what="operator at work", timeout=60)
    return operator


def one_at_a_time(custom: Any, observer: Observer, samples: int) -> tuple[list[float], list[float]]:
    deployed, ready = [], []
    for index in range(samples):
        name = f"single-{index}"
        started = time.monotonic()
        create_pool(custom, name)
        wait_until(
            lambda name=name: name in observer.ready,
            what=f"{name} Ready",
            timeout=60,
            interval=0.01,
        )
        deployed.append(observer.deployed[name] - started)
        ready.append(observer.ready[name] - started)
    return deployed, ready


@dataclass(frozen=True)
class Burst:
    """Seconds from the start of a burst of creations to each milestone."""

    created: float  # the client's own loop
    deployed: float  # every Deployment exists
    pods_ready: float  # every Deployment's pods are ready
    ready: float  # every pool's Ready condition is True
    status_lags: list[float]  # per pool: pods ready -> pool Ready


def all_at_once(custom: Any, observer: Observer, count: int) -> Burst:
    """Create ``count`` pools as fast as one client can, then wait for all of them."""
    names = [f"fleet-{index}" for index in range(count)]
    started = time.monotonic()
    for name in names:
        create_pool(custom, name)
    created = time.monotonic() - started
    wait_until(
        lambda: all(n in observer.ready for n in names),
        what=f"{count} pools Ready",
        timeout=600,
        interval=0.05,
    )
    return Burst(
        created=created,
        deployed=max(observer.deployed[n] for n in names) - started,
        pods_ready=max(observer.pods_ready[n] for n in names) - started,
        ready=max(observer.ready[n] for n in names) - started,
        status_lags=[observer.ready[n] - observer.pods_ready[n] for n in names],
    )


def restart(plane: ControlPlane, log_dir: Path, total: int) -> tuple[OperatorProcess, float]:
    """Time from a fresh operator process to every existing pool reconciled by it."""
    started = time.monotonic()
    operator = start_operator(plane, log_dir, 1)
    wait_until(
        lambda: operator.log().count(": reconciled generation") >= total,
        what=f"{total} pools reconciled after the restart",
        timeout=600,
        interval=0.05,
    )
    return operator, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    nodes = max(2, (args.pools + args.samples) // 100 + 1)  # kwok nodes take 110 pods each

    with ControlPlane(gpu_nodes=nodes) as plane, plane.api_client() as api:
        install_api(plane)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        wait_until(
            lambda: client.CoreV1Api(api).list_namespaced_service_account(NAMESPACE).items,
            what="the namespace's default ServiceAccount",
            timeout=60,
        )
        plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=voice_yaml("joe"))
        custom = client.CustomObjectsApi(api)
        operator = start_operator(plane, log_dir, 0)
        idle_mib = rss_mib(operator.pid)
        observer = Observer(api)
        try:
            single_deployed, single_ready = one_at_a_time(custom, observer, args.samples)
            cpu_before = cpu_seconds(operator.pid)
            burst = all_at_once(custom, observer, args.pools)
            fleet_cpu = cpu_seconds(operator.pid) - cpu_before
            time.sleep(15)  # a full autoscaler interval with every pool, then measure
            full_mib = rss_mib(operator.pid)
            operator.stop()
            operator, resync = restart(plane, log_dir, args.pools + args.samples)
            resync_cpu = cpu_seconds(operator.pid)
            restarted_mib = rss_mib(operator.pid)
            operator.stop()
        finally:
            observer.stop()

    total = args.pools + args.samples
    rows = [
        ("apply -> Deployment created, p50", statistics.median(single_deployed), "s"),
        ("apply -> Deployment created, p99", percentile(single_deployed, 0.99), "s"),
        ("apply -> pool Ready, p50", statistics.median(single_ready), "s"),
        ("apply -> pool Ready, p99", percentile(single_ready, 0.99), "s"),
        (f"{args.pools} pools created by one client (the load itself)", burst.created, "s"),
        (f"{args.pools} at once -> every Deployment created", burst.deployed, "s"),
        (f"{args.pools} at once -> every pod ready (scheduler, kwok)", burst.pods_ready, "s"),
        (f"{args.pools} at once -> every pool Ready", burst.ready, "s"),
        (
            f"{args.pools} at once: pods ready -> pool Ready, p50",
            statistics.median(burst.status_lags),
            "s",
        ),
        (
            f"{args.pools} at once: pods ready -> pool Ready, p99",
            percentile(burst.status_lags, 0.99),
            "s",
        ),
        (f"operator CPU time for those {args.pools} pools", fleet_cpu, "s"),
        (f"restart with {total} pools -> all reconciled", resync, "s"),
        ("operator CPU time for that restart (start-up included)", resync_cpu, "s"),
        ("operator memory (RSS), no pools", idle_mib, "MiB"),
        (f"operator memory (RSS), {total} pools", full_mib, "MiB"),
        (f"operator memory (RSS) after restart, {total} pools", restarted_mib, "MiB"),
    ]
    print(f"\noperator benchmark ({args.samples} single pools, then {args.pools} at once)")
    print(f"{'measure':<58} {'value':>9}")
    for label, value, unit in rows:
        print(f"{label:<58} {value:>7.2f} {unit}")
    print(
        f"\nevery Deployment created / the client's create loop: "
        f"{burst.deployed / burst.created:.2f}x (1.0 = the operator kept pace)"
    )
    print(f"every pool Ready / every pod ready: {burst.ready / burst.pods_ready:.3f}x")
    print(f"operator CPU per pool: {fleet_cpu / args.pools * 1000:.0f} ms")
    print(f"memory per pool: {(full_mib - idle_mib) / total * 1024:.0f} KiB")
    print(f"operator logs: {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
