"""Helpers for tests that run `ttsfleet` commands as processes, as a user does."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from timed_fleet import free_port

TTSFLEET = [sys.executable, "-m", "ttsfleet.cli"]


def children(pid: int) -> list[int]:
    """The process's child pids (a local fleet's workers)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def wait_for(predicate: Callable[[], object], what: str, limit: float = 180) -> None:
    """Polls `predicate` (bounded); fails with `what` if it never holds."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Fleet:
    """A running `ttsfleet up`: its process, front-door port and log."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def running_fleet(args: list[str], log: Path) -> Iterator[Fleet]:
    """`ttsfleet up ARGS` on a free port until it listens; interrupted (drained) at the end."""
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*TTSFLEET, "up", *args, "--port", str(port), "--log-format", "json"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = Fleet(process, port, log)
    try:
        wait_for(
            lambda: "ttsfleet is listening" in running.output() or process.poll() is not None,
            "the fleet to start",
        )
        assert process.poll() is None, running.output()
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)
