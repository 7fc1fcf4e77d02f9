"""A real redis-server (Debian's) on 127.0.0.1 for the tests that need one."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from timed_fleet import free_port


def start_redis(workdir: Path, port: int, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """redis-server on host:port (append-only file in workdir, fsync always), once it answers.

    Started again with the same workdir and port, it comes back with its data.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run `make system-deps` (apt-get install redis-server)"
        )
    process = subprocess.Popen(
        [
            binary, "--bind", host, "--port", str(port), "--dir", str(workdir),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            # Off the loopback it answers only with this off (the test made that network).
            "--protected-mode", "yes" if host == "127.0.0.1" else "no",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with redis.Redis(host=host, port=port) as client:
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return process
            time.sleep(0.05)
    process.terminate()
    pytest.fail("redis-server did not answer within 10 s")


@contextlib.contextmanager
def redis_server(workdir: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Starts redis-server on a free port of `host` and yields its URL."""
    port = free_port()
    process = start_redis(workdir, port, host)
    try:
        yield f"redis://{host}:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()
