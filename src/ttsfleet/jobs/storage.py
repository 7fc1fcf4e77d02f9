"""Where finished audio goes: a directory (a local disk or a mounted volume) by default.

The interface is whole objects by key, the shape of an object store's API
(put, streamed get, delete), so an S3 or GCS store drops in as one class.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

READ_CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ResultStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Stores data under key, all or nothing: a reader never sees part of it."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises KeyError if there is none."""

    async def size(self, key: str) -> int:
        """The object's length in bytes; raises KeyError if there is none."""

    async def delete(self, key: str) -> None:
        """Removes the object if it exists."""


class DirectoryStore:
    """One file per key in a directory; written to a temporary file, synced, then renamed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"invalid result key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    def _write(self, path: Path, data: bytes) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".partial-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk
        finally:
            file.close()

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            raise KeyError(key) from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)
