"""A real Prometheus scrapes a fleet on loopback; faults injected into it fire the shipped alerts.

The rules are charts/ttsfleet/files/alerts.yaml with every `for:` cut to 0 s
(the waits are promtool's to test); scrape and evaluation run every second.
Jobs are named as ServiceMonitors name them, so the rules' selectors match.
The same server runs every dashboard panel's query on the fleet's series.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import yaml
from observability.panels import filled, panel_queries
from observability.tools import locate
from timed_fleet import VOICE, TimedEngine, address, free_port, timed_config, words

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer
from ttsfleet.router.settings import RouterSettings

ALERTS = Path(__file__).resolve().parents[2] / "charts" / "ttsfleet" / "files" / "alerts.yaml"
QUEUE_LIMIT = 4
SECONDS = 60  # generous bound on each wait: a hang fails, a slow machine does not


def immediate_rules(path: Path) -> Path:
    """The shipped rules with no `for:` wait."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    path.write_text(yaml.safe_dump(rules))
    return path


@contextlib.contextmanager
def prometheus(workdir: Path, router: RouterServer, pods: list[InferenceServer]) -> Iterator[str]:
    """A Prometheus server on 127.0.0.1 scraping the router and the pods; yields its URL."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(immediate_rules(workdir / "rules.yaml"))],
        "scrape_configs": [
            {
                "job_name": "ttsfleet-router",
                "static_configs": [{"targets": [f"127.0.0.1:{router.metrics_port}"]}],
            },
            {
                "job_name": "english-inference",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{pod.metrics_port}"],
                        "labels": {"namespace": "local", "pod": f"english-{index}"},
                    }
                    for index, pod in enumerate(pods)
                ],
            },
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            str(locate()["prometheus"]),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


# Metrics of events a healthy fleet under light load does not have: their panels stay empty.
RARE_EVENTS = re.compile(r"held_requests|wakeups|wake_seconds|shed|retries|ejections|RESOURCE_EXH")


def query(url: str, promql: str) -> list[Any]:
    """An instant query's result; fails the test on any error Prometheus reports."""
    answer = get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def firing(url: str) -> list[dict[str, Any]]:
    """The alerts firing now (an empty list while Prometheus is still starting)."""
    try:
        answer = await asyncio.to_thread(get, f"{url}/api/v1/alerts")
    except OSError:
        return []
    return [a for a in answer["data"]["alerts"] if a["state"] == "firing"]


async def wait_for_alert(url: str, name: str, **labels: str) -> dict[str, Any]:
    for _ in range(SECONDS * 2):
        for alert in await firing(url):
            if alert["labels"]["alertname"] == name and labels.items() <= alert["labels"].items():
                return alert
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} {labels} did not fire; firing: {await firing(url)}")


@contextlib.asynccontextmanager
async def fleet() -> AsyncIterator[tuple[RouterServer, list[InferenceServer]]]:
    """Two slow timed pods (one request at a time, a short queue) behind a router."""
    pods = [
        InferenceServer(
            timed_config(VOICE, queue_limit=QUEUE_LIMIT, max_batch_size=1),
            {VOICE: TimedEngine(step_seconds=0.2)},
        )
        for _ in range(2)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for pod in pods:
            await pod.start("127.0.0.1", 0, 0)
            stack.push_async_callback(pod.stop, 1.0)
        router = RouterServer(
            StaticDiscovery([(address(p), "english", [VOICE]) for p in pods], VOICE),
            RouterSettings(metrics_port=0),
        )
        await router.start("127.0.0.1", 0)
        stack.push_async_callback(router.stop, 1.0)
        yield router, pods


async def fill_queue(pod: InferenceServer) -> list[asyncio.Task[Any]]:
    """Long streams straight to one pod until its queue is full; they run on in the background."""
    channel = grpc.aio.insecure_channel(address(pod))
    stub = tts_pb2_grpc.TTSServiceStub(channel)

    async def stream() -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for _ in stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(150)), timeout=45):
                pass

    tasks = [asyncio.create_task(stream()) for _ in range(QUEUE_LIMIT + 1)]
    for _ in range(SECONDS * 10):
        if pod.scheduler.load.queue_depth >= QUEUE_LIMIT:
            return tasks
        await asyncio.sleep(0.1)
    raise AssertionError(f"the queue did not fill: {pod.scheduler.load}")


async def test_a_full_queue_and_a_stopped_pod_fire_their_alerts(tmp_path: Path) -> None:
    async with fleet() as (router, pods):
        with prometheus(tmp_path, router, pods) as url:
            await asyncio.sleep(3)  # a few scrapes and evaluations of a healthy fleet
            assert await firing(url) == [], "a healthy fleet fired alerts"
            streams = await fill_queue(pods[0])
            saturated = await wait_for_alert(url, "TTSFleetQueueSaturated", pod="english-0")
            assert saturated["labels"]["severity"] == "warning"
            await pods[1].stop(0.5)
            down = await wait_for_alert(url, "TTSFleetInferencePodDown", job="english-inference")
            assert down["labels"]["instance"] == f"127.0.0.1:{pods[1].metrics_port}"
            names = {a["labels"]["alertname"] for a in await firing(url)}
            assert "TTSFleetPoolHasNoReadyPod" not in names  # the other pod still serves
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)


async def test_every_dashboard_panel_query_runs_on_a_live_fleet(tmp_path: Path) -> None:
    """Each panel's query succeeds on real scrapes; every panel but those of rare events shows data."""
    async with fleet() as (router, pods):
        with prometheus(tmp_path, router, pods) as url:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
                stub = tts_pb2_grpc.TTSServiceStub(channel)
                for priority in [tts_pb2.PRIORITY_INTERACTIVE, tts_pb2.PRIORITY_BATCH]:
                    request = tts_pb2.TTSRequest(text=words(3), priority=priority)
                    await stub.Synthesize(request)
                    assert [c async for c in stub.StreamSynthesize(request)]
            answers: dict[str, list[Any]] = {}
            for _ in range(SECONDS * 2):  # until a few scrapes after the traffic
                answers = {
                    q: await asyncio.to_thread(query, url, filled(q)) for q in panel_queries()
                }
                if all(answers[q] for q in panel_queries() if not RARE_EVENTS.search(q)):
                    break
                await asyncio.sleep(0.5)
            empty = [q for q, result in answers.items() if not result]
            missing = [q for q in empty if not RARE_EVENTS.search(q)]
            assert missing == [], "\n".join(missing)
