"""A process slowed from outside: SIGSTOP and SIGCONT in turns, as a starved or throttled pod is."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

# Seconds stopped, then running: a 2:1 duty cycle leaves the process a third of its time.
STOPPED, RUNNING = 0.2, 0.1


@contextlib.contextmanager
def throttled(pid: int) -> Iterator[None]:
    """Stops and continues `pid` in turns on a thread until the block ends; leaves it running."""
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                os.kill(pid, signal.SIGSTOP)
                time.sleep(STOPPED)
                os.kill(pid, signal.SIGCONT)
                stop.wait(RUNNING)
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
