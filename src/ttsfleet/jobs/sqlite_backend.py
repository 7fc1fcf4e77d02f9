"""The embedded default backend: one SQLite file in WAL mode, no server to run.

Each commit is synced to disk (synchronous=FULL), so an accepted job survives
a crash of the process and of the machine. Several processes on one host can
share the file (a gateway and separate workers); a claim is one UPDATE ...
RETURNING statement, atomic under SQLite's write lock. All calls run on one
thread that owns the connection, keeping the event loop free.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ttsfleet.jobs.model import LOST, Claim, Job, JobSpec, JobState

T = TypeVar("T")

# How often a waiting claim looks again for work submitted by another process.
POLL_SECONDS = 0.1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pieces_done INTEGER NOT NULL DEFAULT 0,
    pieces_total INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    token TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, run_at);
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (state, updated_at);
"""
TERMINAL = "('succeeded', 'failed', 'dead_lettered')"

_CLAIM = """
UPDATE jobs SET state = 'running', attempts = attempts + 1, token = :token,
    lease_until = :lease_until, updated_at = :now,
    error = CASE WHEN state = 'running' THEN 'attempt ' || attempts || ': ' || :lost ELSE error END
WHERE id = (
    SELECT id FROM jobs
    WHERE (state = 'queued' AND run_at <= :now) OR (state = 'running' AND lease_until < :now)
    ORDER BY run_at LIMIT 1
)
RETURNING *
"""


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        spec=JobSpec.from_json(row["spec"]),
        state=JobState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempts=row["attempts"],
        pieces_done=row["pieces_done"],
        pieces_total=row["pieces_total"],
        error=row["error"],
        result=row["result"],
    )


def _claim_row(token: str, lease: float, db: sqlite3.Connection) -> sqlite3.Row | None:
    now = time.time()
    params = {"token": token, "now": now, "lease_until": now + lease, "lost": LOST}
    row: sqlite3.Row | None = db.execute(_CLAIM, params).fetchone()
    return row


class SqliteBackend:
    """Jobs in a SQLite database file."""

    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor, lease: float):
        self._db = connection
        self._thread = thread
        self._lease = lease
        self._closed = False
        # Wakes a waiting claim at once when this process submits or requeues.
        self._wake = asyncio.Event()

    @classmethod
    async def open(cls, path: str | Path, lease_seconds: float = 30.0) -> SqliteBackend:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs-sqlite")

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            return db

        connection = await asyncio.get_running_loop().run_in_executor(thread, connect)
        return cls(connection, thread, lease_seconds)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, self._db)

    async def submit(self, spec: JobSpec) -> tuple[Job, bool]:
        now = time.time()
        job_id = uuid.uuid4().hex

        def insert(db: sqlite3.Connection) -> tuple[Job, bool]:
            cursor = db.execute(
                "INSERT INTO jobs (id, idempotency_key, spec, state, run_at, created_at, updated_at)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (job_id, spec.scoped_key or None, spec.to_json(), now, now, now),
            )
            created = cursor.rowcount == 1
            key, value = ("id", job_id) if created else ("idempotency_key", spec.scoped_key)
            row = db.execute(f"SELECT * FROM jobs WHERE {key} = ?", (value,)).fetchone()
            return _job(row), created

        job, created = await self._run(insert)
        self._wake.set()
        return job, created

    async def get(self, job_id: str) -> Job | None:
        row = await self._run(
            lambda db: db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        )
        return _job(row) if row else None

    async def queued(self, tenant: str | None = None) -> int:
        sql = "SELECT count(*) FROM jobs WHERE state = 'queued'"
        if tenant is not None:
            sql += " AND json_extract(spec, '$.tenant') = ?"
        params = () if tenant is None else (tenant,)
        row = await self._run(lambda db: db.execute(sql, params).fetchone())
        return int(row[0])

    async def claim(self, worker: str, wait: float) -> Claim | None:
        give_up = time.monotonic() + wait
        while True:
            self._wake.clear()
            token = f"{worker}:{uuid.uuid4().hex}"
            row = await self._run(functools.partial(_claim_row, token, self._lease))
            if row:
                return Claim(_job(row), token)
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(remaining, POLL_SECONDS))

    async def _update(self, claim: Claim, changes: dict[str, Any], refund: bool = False) -> bool:
        """Applies changes if the claim still holds the job (`refund`: uncount its attempt)."""
        changes = {**changes, "updated_at": time.time()}
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        if refund:
            assignments += ", attempts = attempts - 1"
        sql = (
            f"UPDATE jobs SET {assignments} WHERE id = :id AND token = :token AND state = 'running'"
        )
        params = {**changes, "id": claim.job.id, "token": claim.token}
        cursor = await self._run(lambda db: db.execute(sql, params))
        return cursor.rowcount == 1

    async def heartbeat(self, claim: Claim, pieces_done: int, pieces_total: int) -> bool:
        return await self._update(
            claim,
            {
                "pieces_done": pieces_done,
                "pieces_total": pieces_total,
                "lease_until": time.time() + self._lease,
            },
        )

    async def succeed(self, claim: Claim, result: str) -> bool:
        return await self._update(
            claim, {"state": JobState.SUCCEEDED.value, "result": result, "error": "", "token": ""}
        )

    async def retry(self, claim: Claim, error: str, delay: float, refund: bool = False) -> bool:
        done = await self._update(
            claim,
            {
                "state": JobState.QUEUED.value,
                "error": error,
                "token": "",
                "run_at": time.time() + delay,
            },
            refund,
        )
        self._wake.set()
        return done

    async def release(self, claim: Claim, error: str, delay: float) -> bool:
        return await self.retry(claim, error, delay, refund=True)

    async def fail(self, claim: Claim, error: str, state: JobState) -> bool:
        return await self._update(claim, {"state": state.value, "error": error, "token": ""})

    async def dead_letters(self, tenant: str | None, limit: int) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE state = 'dead_lettered'"
        if tenant is not None:
            sql += " AND json_extract(spec, '$.tenant') = :tenant"
        sql += " ORDER BY updated_at DESC LIMIT :limit"
        params = {"tenant": tenant, "limit": limit}
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        return [_job(row) for row in rows]

    async def redrive(self, job_id: str) -> bool:
        now = time.time()
        cursor = await self._run(
            lambda db: db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?, updated_at = ?"
                " WHERE id = ? AND state = 'dead_lettered'",
                (now, now, job_id),
            )
        )
        self._wake.set()
        return bool(cursor.rowcount == 1)

    async def expire(self, before: float, limit: int) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                f"DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN {TERMINAL}"
                " AND updated_at < ? LIMIT ?) RETURNING result",
                (before, limit),
            ).fetchall()
        )
        return [row["result"] for row in rows]

    async def close(self) -> None:
        """Closes the database; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        await self._run(lambda db: db.close())
        self._thread.shutdown(wait=True)
