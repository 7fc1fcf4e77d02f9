"""Files read again when they change: secrets and grants rotate without a restart.

Kubernetes updates a mounted Secret in place (a new file behind a symlink),
cert-manager renews certificates the same way: whoever holds such a file
asks `current()` when it needs the contents, and gets them parsed anew once
the file's identity, size or time changed. A new version that cannot be read
or parsed is logged and the last good one stays in force: a half-written or
mistyped edit must not lock everybody out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Version = tuple[int, int, int]


def file_version(path: Path) -> Version:
    """What changes when a file is rewritten or swapped (as a Secret update swaps it)."""
    stat = os.stat(path)
    return (stat.st_mtime_ns, stat.st_ino, stat.st_size)


class ReloadingFile(Generic[T]):
    """`parse(text)` of a file, redone when the file changes (checked at most every `check_seconds`)."""

    def __init__(self, path: Path, parse: Callable[[str], T], check_seconds: float = 0.0) -> None:
        self.path = path
        self._parse = parse
        self._check_seconds = check_seconds
        self._checked = float("-inf")
        # The first read must succeed: a service must not start with nothing.
        self._value = parse(path.read_text(encoding="utf-8"))
        self._version = file_version(path)

    def current(self) -> T:
        now = time.monotonic()
        if now - self._checked < self._check_seconds:
            return self._value
        self._checked = now
        try:
            version = file_version(self.path)
            if version != self._version:
                self._value = self._parse(self.path.read_text(encoding="utf-8"))
                self._version = version
                log.info("reloaded %s", self.path)
        except (OSError, ValueError) as error:
            log.error("%s not reloaded (%s); the previous version stays", self.path, error)
        return self._value
