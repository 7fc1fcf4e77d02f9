"""Bounded polling: every wait in the test cluster ends, with a reason."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not become true in time; the message says which."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
) -> T:
    """Call ``probe`` until it returns something truthy, and return that.

    Exceptions from ``probe`` propagate: a probe that can fail transiently
    catches and returns None itself, so real errors are not swallowed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
