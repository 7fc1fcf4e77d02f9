"""Helpers for tests that run `ttsfleet` commands as processes, as a user does."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

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
