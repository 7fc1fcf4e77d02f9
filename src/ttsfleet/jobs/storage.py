"""Where finished audio goes: a directory (a local disk or a mounted volume) by default.

The interface is objects by key, the shape of an object store's API
(streamed put as a multipart upload, streamed get, delete), so an S3 or GCS
store drops in as one class. Audio is written as it arrives, so a job's
audio is never held whole in memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

READ_CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ResultWriter(Protocol):
    """An object being written: appended to, then committed whole or aborted."""

    async def write(self, data: bytes) -> None: ...

    async def commit(self, head: bytes = b"") -> int:
        """Makes the object visible under its key, first overwriting its start with `head`.

        `head` is for headers whose sizes are known only at the end (WAV).
        Returns the object's size.
        """

    async def abort(self) -> None:
        """Throws the partial object away."""


class ResultStore(Protocol):
    def writer(self, key: str) -> ResultWriter:
        """A writer for key, all or nothing: a reader never sees part of the object."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises KeyError if there is none."""

    async def size(self, key: str) -> int:
        """The object's length in bytes; raises KeyError if there is none."""

    async def delete(self, key: str) -> None:
        """Removes the object if it exists."""


class FileWriter:
    """A temporary file in the store's directory; committing syncs it, renames it into place
    and syncs the directory, so the name survives a power loss as well as the bytes."""

    def __init__(self, root: Path, path: Path) -> None:
        self._root = root
        self._path = path
        self._file: BinaryIO | None = None
        self._temporary = ""

    async def write(self, data: bytes) -> None:
        if self._file is None:
            descriptor, self._temporary = await asyncio.to_thread(
                tempfile.mkstemp, dir=self._root, prefix=".partial-"
            )
            self._file = os.fdopen(descriptor, "wb")
        await asyncio.to_thread(self._file.write, data)

    async def commit(self, head: bytes = b"") -> int:
        if self._file is None:
            await self.write(b"")
        assert self._file is not None
        try:
            return await asyncio.to_thread(self._finish, self._file, head)
        except BaseException:
            await self.abort()
            raise

    def _finish(self, file: BinaryIO, head: bytes) -> int:
        size = file.tell()
        if head:
            file.seek(0)
            file.write(head)
        file.flush()
        os.fsync(file.fileno())
        file.close()
        os.replace(self._temporary, self._path)
        directory = os.open(self._root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return size

    async def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            await asyncio.to_thread(Path(self._temporary).unlink, missing_ok=True)


class DirectoryStore:
    """One file per key in a directory (see FileWriter)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"invalid result key {key!r}")
        return self.root / key

    def writer(self, key: str) -> FileWriter:
        return FileWriter(self.root, self._path(key))

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
