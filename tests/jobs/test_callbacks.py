"""Callbacks against hostile receivers, for real on 127.0.0.1: internal addresses refused
before any connection (an audit hook sees every socket.connect), signed bodies, a receiver
that drips its answer, and a stored job that no longer loads."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from job_helpers import LOOPBACK_CALLBACKS, SECRET, callback_receiver, worker_for
from timed_fleet import VOICE

from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.callback import SIGNATURE_HEADER, CallbackPolicy, Outbox, parse_networks
from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.jobs.model import Job, JobSpec, JobState
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.router.server import RouterServer

# Every address this process dials, seen by an audit hook (hooks cannot be removed: it only
# records, and only while a test asks it to).
CONNECTS: list[Any] = []
RECORDING = [False]


def _audit(
    event: str, args: tuple[Any, ...], connects: list[Any] = CONNECTS, on: list[bool] = RECORDING
) -> None:
    """Bound to its lists, not to module globals: it outlives the module at interpreter exit."""
    if on[0] and event == "socket.connect":
        connects.append(args[1])


sys.addaudithook(_audit)


def ended_job(url: str) -> Job:
    spec = JobSpec(text="Done.", callback_url=url)
    return Job(id="j1", spec=spec, state=JobState.SUCCEEDED, created_at=1.0, updated_at=2.0)


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    """Callbacks as shipped: no allow-list."""
    box = Outbox(CallbackPolicy(total_seconds=2.0, secret=SECRET), JobMetrics())
    yield box
    await box.close()


async def test_internal_addresses_are_refused_without_a_connection(outbox: Outbox) -> None:
    with callback_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        urls = [
            "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
            "http://10.0.0.1/",
            "http://172.16.5.4:8080/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",  # carrier-grade NAT: not public
            f"http://127.0.0.1:{port}/done",  # loopback, with a real listener
            f"http://localhost:{port}/done",  # a name that resolves to loopback
            f"http://[::1]:{port}/done",
            f"http://[::ffff:127.0.0.1]:{port}/done",  # loopback hidden in IPv6
            f"http://0.0.0.0:{port}/done",
            "http://[fd00::1]/",  # IPv6 unique local
        ]
        CONNECTS.clear()
        RECORDING[0] = True
        started = time.monotonic()
        try:
            outcomes = [await outbox.notify(ended_job(url)) for url in urls]
        finally:
            RECORDING[0] = False
        elapsed = time.monotonic() - started
    assert outcomes == ["refused"] * len(urls)
    assert CONNECTS == [], "no connection may be attempted to a refused address"
    assert receiver.bodies == []
    assert elapsed < 2.0, elapsed  # refused at once, not after timeouts


async def test_an_allowed_receiver_gets_a_signed_body_from_the_checked_address() -> None:
    box = Outbox(LOOPBACK_CALLBACKS, JobMetrics())
    with callback_receiver() as receiver:
        CONNECTS.clear()
        RECORDING[0] = True
        try:
            outcome = await box.notify(ended_job(receiver.url))
        finally:
            RECORDING[0] = False
            await box.close()
    port = int(receiver.url.split(":")[2].split("/")[0])
    assert outcome == "delivered"
    assert [("127.0.0.1", port)] == CONNECTS
    header = receiver.headers[0][SIGNATURE_HEADER]
    stamp, _, mac = header.partition(",v1=")
    timestamp = int(stamp.removeprefix("t="))
    expected = hmac.new(SECRET, f"{timestamp}.".encode() + receiver.raw[0], hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    assert abs(time.time() - timestamp) < 60
    assert receiver.bodies == [ended_job(receiver.url).public()]


class DripServer:
    """Answers every request with headers, then one body byte every 0.2 s (for 60 s, or
    until the caller hangs up)."""

    def __init__(self) -> None:
        self.held: list[float] = []  # how long each connection was kept open

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
            for _ in range(300):
                if reader.at_eof():  # the caller hung up
                    break
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.held.append(time.monotonic() - started)
            writer.close()


async def test_a_dripping_receiver_is_cut_off_and_holds_no_job_slot(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    drip = DripServer()
    server = await asyncio.start_server(drip.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    policy = CallbackPolicy(
        allow=parse_networks("127.0.0.1"), total_seconds=1.0, attempts=2, secret=SECRET
    )
    stop = asyncio.Event()
    async with (
        server,
        worker_for(backend, tmp_path, f"127.0.0.1:{router.port}", callbacks=policy) as worker,
    ):
        first, _ = await backend.submit(
            JobSpec(text="Call the drip.", voice=VOICE, callback_url=url)
        )
        running = asyncio.ensure_future(worker.run(stop))
        started = time.monotonic()
        second, _ = await backend.submit(JobSpec(text="Then me.", voice=VOICE))
        for _ in range(200):
            done = await backend.get(second.id)
            if done and done.state is JobState.SUCCEEDED:
                break
            await asyncio.sleep(0.02)
        second_done = time.monotonic() - started
        count = worker.metrics.registry.get_sample_value
        for _ in range(300):
            if count("ttsfleet_callbacks_total", {"outcome": "failed"}):
                break
            await asyncio.sleep(0.02)
        callbacks_done = time.monotonic() - started
        stop.set()
        await asyncio.wait_for(running, 10)
        for _ in range(100):  # the server notices the second hang-up within a drip
            if len(drip.held) == 2:
                break
            await asyncio.sleep(0.02)
    assert (await backend.get(first.id)).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert done is not None and done.state is JobState.SUCCEEDED
    assert second_done < 1.0, f"the next job waited for the callback: {second_done:.2f} s"
    assert count("ttsfleet_callbacks_total", {"outcome": "failed"}) == 1
    assert 1.9 < callbacks_done < 4.0, callbacks_done  # two attempts of one second each
    assert len(drip.held) == 2 and all(0.9 < held < 1.6 for held in drip.held), drip.held


async def test_a_job_whose_callback_url_cannot_be_dialled_does_not_stop_the_worker(
    router: RouterServer, tmp_path: Path
) -> None:
    """The issue's poison: `https://a:b:c/`, stored before submissions were checked."""
    backend = await SqliteBackend.open(tmp_path / "jobs.db")
    try:
        spec = JobSpec(text="Poison.", voice=VOICE).to_json()
        poison = spec.replace('"callback_url": ""', '"callback_url": "https://a:b:c/"')
        await backend._run(
            lambda db: db.execute(
                "INSERT INTO jobs (id, spec, state, run_at, created_at, updated_at)"
                " VALUES ('poison', ?, 'queued', 0, 0, 0)",
                (poison,),
            )
        )
        good, _ = await backend.submit(JobSpec(text="Still served.", voice=VOICE))
        stop = asyncio.Event()
        async with worker_for(backend, tmp_path / "results", f"127.0.0.1:{router.port}") as worker:
            running = asyncio.ensure_future(worker.run(stop))
            count = worker.metrics.registry.get_sample_value
            for _ in range(300):
                served = await backend.get(good.id)
                if (
                    served
                    and served.state.terminal
                    and count("ttsfleet_callbacks_total", {"outcome": "failed"})
                ):
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(running, 10)
        ran = await backend.get("poison")
        assert ran is not None and ran.spec.callback_url == "https://a:b:c/"
        assert ran.state is JobState.SUCCEEDED
        assert served is not None and served.state is JobState.SUCCEEDED
        assert count("ttsfleet_callbacks_total", {"outcome": "refused"}) == 1
        assert not running.exception()
    finally:
        await backend.close()
