"""`ttsfleet up` as a child process, for tests that use the local fleet as a user would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TTSFLEET = [sys.executable, "-m", "ttsfleet.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], what: str, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Fleet:
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
