"""`ttsfleet up`: the same TTSVoice/TTSPool manifests as a fleet on one machine.

Each pool replica is a local pod: an inference process (`ttsfleet inference`)
on a loopback port. The router runs in this process as the front door with a
static view of the pods. A pod that dies is restarted and the router told
its new address. A pool that scales from zero (autoscaling.minReplicas 0)
starts with no pod: its first request is held by the router, which wakes
the pool here (`wake`: one pod process is started); after
scaleDownStabilizationSeconds without work (the pod's own load reports) the
pod is stopped and the pool sleeps again. Ctrl-C (or SIGTERM) drains the
router, then the pods.
This component composes the others, as a cluster would: it starts the
router and (with --http-port) the gateway through their public entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from ttsfleet import logs
from ttsfleet.manifests import ManifestError, Manifests, PodConfig, Pool, Voice, load_manifests
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc
from ttsfleet.rollouts import pool_revision, rollout_from_spec
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)


class PodFailed(RuntimeError):
    """A local pod exited before it was ready; the message carries its exit code."""


@dataclass(eq=False)
class LocalPod:
    """One replica of a pool, run as a child process."""

    pool: Pool
    index: int
    config_path: Path
    log_format: str
    revision: str = ""
    canary: bool = False
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    restarts: int = 0
    stopping: bool = False

    @property
    def name(self) -> str:
        return f"{self.pool.name}{'-canary' if self.canary else ''}-{self.index}"

    async def start(self) -> None:
        """Starts the process and waits until it serves, or fails saying why."""
        ready = self.config_path.with_name(f"{self.name}.ready")
        ready.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ttsfleet.cli", "inference",
            "--config", str(self.config_path),
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
            "--ready-file", str(ready),
            "--log-format", self.log_format,
            env={**os.environ, "POD_NAME": self.name},
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while not ready.exists():
            if self.process.returncode is not None:
                raise PodFailed(f"pod {self.name} exited with code {self.process.returncode}")
            if asyncio.get_running_loop().time() > deadline:
                raise PodFailed(f"pod {self.name} not ready after {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.05)
        self.port = int(ready.read_text().split()[0])

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            log.warning("pod did not drain in time; killing it", extra={"pod": self.name})
            self.process.kill()
            await self.process.wait()


class LocalFleet:
    """Runs every pool of a set of manifests as local pods behind the router."""

    def __init__(
        self,
        manifests: Manifests,
        workdir: Path,
        log_format: str,
        canary: Manifests | None = None,
    ) -> None:
        """`canary`: changed TTSVoices, run as a canary by the pools with `spec.rollout`."""
        if not manifests.pools:
            raise ManifestError("no TTSPool in the manifests: nothing to run")
        self.pods: list[LocalPod] = []
        self._log_format = log_format
        self._configs: dict[str, tuple[Pool, Path, str]] = {}
        weights: dict[str, dict[str, int]] = {}
        for pool in manifests.pools:
            voices = manifests.voices_of(pool)
            config, revision = self._config(pool, voices, workdir)
            self._configs[pool.name] = (pool, config, revision)
            if pool.autoscaling.scales_from_zero:
                continue  # asleep until its first request (and no stable pods to canary against)
            replicas = pool.autoscaling.min_replicas if pool.autoscaling.enabled else pool.replicas
            self.pods += [
                LocalPod(pool, i, config, log_format, revision) for i in range(max(replicas, 1))
            ]
            rollout = rollout_from_spec(pool.raw_spec, f"TTSPool {pool.name}")
            changed = [(canary.voices if canary else {}).get(v.name, v) for v in voices]
            if rollout is None or changed == voices:
                continue
            config, new = self._config(pool, changed, workdir, canary=True)
            self.pods += [
                LocalPod(pool, i, config, log_format, new, canary=True)
                for i in range(rollout.canary_replicas)
            ]
            weights[pool.name] = {
                revision: 100 - rollout.canary_percent,
                new: rollout.canary_percent,
            }
        self.sleepers = {
            pool.name: pool.voices for pool in manifests.pools if pool.autoscaling.scales_from_zero
        }
        self.discovery = StaticDiscovery(
            [],
            default_voice=manifests.pools[0].default_voice,
            sleepers=self.sleepers,
            weights=weights,
        )
        self._watchers: list[asyncio.Task[None]] = []
        self._waking: set[asyncio.Task[None]] = set()

    @staticmethod
    def _config(
        pool: Pool, voices: list[Voice], workdir: Path, canary: bool = False
    ) -> tuple[Path, str]:
        """Writes the pod configuration of one revision of a pool; returns it and the revision."""
        config = workdir / f"{pool.name}{'-canary' if canary else ''}.yaml"
        config.write_text(yaml.safe_dump(PodConfig.of(pool, voices).to_dict()))
        return config, pool_revision(voices)

    def _publish(self) -> None:
        """Tells the router which pods are up right now."""
        self.discovery.update(
            [
                (f"127.0.0.1:{w.port}", w.pool.name, w.pool.voices, w.revision)
                for w in self.pods
                if w.port and not w.stopping and w.process and w.process.returncode is None
            ]
        )

    async def start(self) -> None:
        try:
            await asyncio.gather(*(w.start() for w in self.pods))
        except BaseException:
            await self.stop(grace=5)
            raise
        self._publish()
        self._watchers = [asyncio.create_task(self._supervise(w)) for w in self.pods]

    async def _supervise(self, pod: LocalPod) -> None:
        """Restarts a pod that exits on its own, backing off if it keeps failing."""
        while not pod.stopping:
            assert pod.process is not None
            code = await pod.process.wait()
            if pod.stopping:
                return
            pod.port = 0
            self._publish()
            delay = RESTART_BACKOFF_S[min(pod.restarts, len(RESTART_BACKOFF_S) - 1)]
            log.error(
                "pod exited; restarting",
                extra={"pod": pod.name, "code": code, "in_seconds": delay},
            )
            await asyncio.sleep(delay)
            pod.restarts += 1
            try:
                await pod.start()
            except PodFailed as error:
                log.error("restart failed", extra={"pod": pod.name, "error": str(error)})
                continue
            self._publish()

    async def wake(self, pool: str) -> None:
        """Starts the first pod of a sleeping pool (in the background); a no-op once it has one."""
        if pool not in self.sleepers or any(
            w.pool.name == pool and not w.stopping for w in self.pods
        ):
            return
        spec, config, revision = self._configs[pool]
        pod = LocalPod(spec, 0, config, self._log_format, revision)
        self.pods.append(pod)
        log.info("waking pool: starting a pod", extra={"pool": pool})
        task = asyncio.create_task(self._bring_up(pod))
        self._waking.add(task)
        task.add_done_callback(self._waking.discard)

    async def _bring_up(self, pod: LocalPod) -> None:
        """Starts a woken pod and supervises it; if it fails to start, the next request asks again."""
        try:
            await pod.start()
        except PodFailed as error:
            log.error("woken pod failed to start", extra={"pod": pod.name, "error": str(error)})
            self.pods.remove(pod)
            await pod.stop(grace=1)
            return
        self._publish()
        self._watchers += [
            asyncio.create_task(self._supervise(pod)),
            asyncio.create_task(self._sleep_when_idle(pod)),
        ]

    async def _sleep_when_idle(self, pod: LocalPod) -> None:
        """Stops a woken pod once its load reports showed no work for a whole window."""
        window = pod.pool.autoscaling.scale_down_stabilization_seconds
        clock = asyncio.get_running_loop().time
        idle_since = clock()
        while clock() - idle_since < window:
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel:
                    reports = ttsfleet_v1_pb2_grpc.LoadReporterStub(channel).WatchLoad(
                        ttsfleet_v1_pb2.WatchLoadRequest(min_interval_ms=100, max_interval_ms=1000)
                    )
                    async for report in reports:
                        if report.queue_depth or report.in_flight or report.queued_audio_seconds:
                            idle_since = clock()
                        elif clock() - idle_since >= window:
                            break
            except grpc.aio.AioRpcError:  # restarting: its supervisor brings it back
                await asyncio.sleep(1.0)
        log.info("pool idle; stopping its pod", extra={"pod": pod.name, "idle_seconds": window})
        pod.stopping = True
        self._publish()  # the router sends it nothing new; what it accepted, it finishes
        await pod.stop(grace=30.0)
        self.pods.remove(pod)

    async def stop(self, grace: float) -> None:
        for task in [*self._watchers, *self._waking]:
            task.cancel()
        await asyncio.gather(*(w.stop(grace) for w in self.pods))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttsfleet up", description=__doc__)
    parser.add_argument("-f", "--file", type=Path, required=True, help="TTSVoice/TTSPool YAML")
    parser.add_argument(
        "--canary",
        type=Path,
        default=None,
        help="changed TTSVoices: pools with spec.rollout run them as a canary revision",
    )
    parser.add_argument("--host", default="127.0.0.1", help="front door address")
    parser.add_argument("--port", type=int, default=50051, help="front door port")
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    parser.add_argument("--log-format", choices=("json", "text"), default=None)
    parser.add_argument(
        "--http-port", type=int, default=None, help="also serve the HTTP gateway on this port"
    )
    parser.add_argument(
        "--jobs-dir", type=Path, default=Path("ttsfleet-jobs"), help="the gateway's jobs and audio"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, log_format: str) -> int:
    manifests = load_manifests(args.file)
    canary = load_manifests(args.canary) if args.canary else None
    # Handlers first: a Ctrl-C during start-up must still stop cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="ttsfleet-") as workdir:
        local = LocalFleet(manifests, Path(workdir), log_format, canary)
        await local.start()
        router = RouterServer(local.discovery, waker=local)
        try:
            port = await router.start(args.host, args.port)
        except BaseException:
            await local.stop(grace=5)
            raise
        _announce(local, args.host, port)
        async with contextlib.AsyncExitStack() as http:
            if args.http_port is not None:
                from ttsfleet.gateway.server import local_gateway  # needs the gateway extra

                gateway = await http.enter_async_context(
                    local_gateway(f"127.0.0.1:{port}", args.host, args.http_port, args.jobs_dir)
                )
                print(f"HTTP gateway (jobs, /v1/audio/speech) on {args.host}:{gateway.port}")
            await stop.wait()
            print("\nttsfleet: draining...", file=sys.stderr)
        await router.stop(args.drain_seconds)
        await local.stop(args.drain_seconds)
    return 0


def _announce(local: LocalFleet, host: str, port: int) -> None:
    pools: dict[tuple[str, str, bool], list[int]] = {}
    for pod in local.pods:
        pools.setdefault((pod.pool.name, pod.revision, pod.canary), []).append(pod.port)
    print(f"ttsfleet is listening on {host}:{port}", flush=True)
    for (pool, revision, canary), ports in pools.items():
        what = f"pool {pool}{' canary' if canary else ''}: {len(ports)} pods"
        print(f"  {what} on 127.0.0.1 ports {ports} (revision {revision})", flush=True)
    for pool in local.sleepers:
        print(f"  pool {pool}: asleep; its first request starts a pod", flush=True)
    print(f'Try: ttsfleet say "Hello there" -o hello.wav --address {host}:{port}', flush=True)
    print("Ctrl-C stops the fleet.", flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    log_format = args.log_format or ("text" if sys.stderr.isatty() else "json")
    logs.configure("fleet", json_output=log_format == "json")
    try:
        return asyncio.run(run(args, log_format))
    except (ManifestError, PodFailed, OSError) as error:
        print(f"ttsfleet up: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
