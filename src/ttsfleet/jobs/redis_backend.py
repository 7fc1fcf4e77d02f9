"""The distributed backend: Redis Streams with a consumer group, for fleets of workers.

A job is a hash; queuing it adds its id to a stream that every worker reads
through one consumer group (XREADGROUP), so each entry goes to one worker and
stays pending until acknowledged. The pending entry is the lease: a worker
renews it by re-claiming its own entry (XCLAIM resets the idle time), and an
entry idle longer than the lease belongs to a worker presumed dead, which
another takes over with XAUTOCLAIM. Retries wait in a sorted set by due time
and re-enter the stream when due. Every state change is one Lua script, so a
crash between two steps cannot lose a job or leave it half-moved. All keys
share one hash tag, so the backend also runs on Redis Cluster.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ttsfleet.jobs.model import LOST, Claim, Job, JobSpec, JobState

CONSUMER_GROUP = "workers"
# The longest a claim blocks on the stream before looking at retries due again.
BLOCK_MS = 200

# Jobs stored before tenants existed have no per-tenant counter: guarded by `if tq`.
_TENANT_COUNT = """
local function tenant_count(job, by)
    local tq = redis.call('HGET', job, 'tqueued')
    if tq then redis.call('INCRBY', tq, by) end
end
"""

_SUBMIT = """
if ARGV[4] ~= '' then
    local existing = redis.call('GET', KEYS[1])
    if existing then return {0, existing} end
    redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'spec', ARGV[2], 'state', 'queued', 'attempts', 0,
    'pieces_done', 0, 'pieces_total', 0, 'error', '', 'result', '', 'token', '',
    'created_at', ARGV[3], 'updated_at', ARGV[3], 'idem', ARGV[4], 'tqueued', KEYS[5])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
redis.call('INCR', KEYS[4])
redis.call('INCR', KEYS[5])
return {1, ARGV[1]}
"""

# Takes a delivered entry: skips (and acknowledges) jobs already ended.
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'succeeded' or state == 'failed' or state == 'dead_lettered' then
    redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
    redis.call('XDEL', KEYS[2], ARGV[1])
    return 0
end
if state == 'queued' then
    redis.call('DECR', KEYS[3])
    tenant_count(KEYS[1], -1)
end
if state == 'running' then
    redis.call('HSET', KEYS[1], 'error',
        'attempt ' .. redis.call('HGET', KEYS[1], 'attempts') .. ': ' .. ARGV[5])
end
redis.call('HSET', KEYS[1], 'state', 'running', 'token', ARGV[3], 'message', ARGV[1],
    'updated_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 1
"""

# Renews the lease and records progress while the token still holds the job.
_HEARTBEAT = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local message = redis.call('HGET', KEYS[1], 'message')
redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, message, 'JUSTID')
redis.call('HSET', KEYS[1], 'pieces_done', ARGV[4], 'pieces_total', ARGV[5], 'updated_at', ARGV[6])
return 1
"""

# Ends an attempt: new state and fields, entry acknowledged; a retry waits in the delayed set,
# an ended job in the set that retention reads (and a dead letter in its own index).
_FINISH = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local message = redis.call('HGET', KEYS[1], 'message')
redis.call('XACK', KEYS[2], ARGV[2], message)
redis.call('XDEL', KEYS[2], message)
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'token', '', 'message', '', 'updated_at', ARGV[4],
    unpack(ARGV, 8))
if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
if ARGV[3] == 'queued' then
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
    redis.call('INCR', KEYS[4])
    tenant_count(KEYS[1], 1)
else
    redis.call('ZADD', KEYS[5], ARGV[4], ARGV[6])
    if ARGV[3] == 'dead_lettered' then redis.call('ZADD', KEYS[6], ARGV[4], ARGV[6]) end
end
return 1
"""

# A dead letter back in the queue with fresh attempts.
_REDRIVE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'dead_lettered' then return 0 end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
redis.call('INCR', KEYS[3])
tenant_count(KEYS[1], 1)
return 1
"""

# Removes jobs that ended before ARGV[1] (their idempotency keys too); their result keys
# ('' for a job without audio).
_EXPIRE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local results = {}
for _, id in ipairs(ids) do
    local key = ARGV[3] .. 'job:' .. id
    local fields = redis.call('HMGET', key, 'result', 'idem')
    table.insert(results, fields[1] or '')
    if fields[2] and fields[2] ~= '' then redis.call('DEL', ARGV[3] .. 'idem:' .. fields[2]) end
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
end
return results
"""

# Moves retries that are due back into the stream.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('XADD', KEYS[2], '*', 'id', id)
end
return #due
"""


def _job(fields: dict[str, str]) -> Job:
    return Job(
        id=fields["id"],
        spec=JobSpec.from_json(fields["spec"]),
        state=JobState(fields["state"]),
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
        attempts=int(fields["attempts"]),
        pieces_done=int(fields["pieces_done"]),
        pieces_total=int(fields["pieces_total"]),
        error=fields["error"],
        result=fields["result"],
    )


class RedisBackend:
    """Jobs in Redis: hashes for records, a stream and consumer group for the queue."""

    def __init__(self, client: redis.Redis, lease_seconds: float, prefix: str) -> None:
        self._redis = client
        self._lease_ms = max(int(lease_seconds * 1000), 1)
        self._prefix = prefix
        self._stream = f"{prefix}stream"
        self._delayed = f"{prefix}delayed"
        self._queued = f"{prefix}queued"
        self._ended = f"{prefix}ended"
        self._dead = f"{prefix}dead"
        self._submit = client.register_script(_SUBMIT)
        self._start = client.register_script(_TENANT_COUNT + _START)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._finish = client.register_script(_TENANT_COUNT + _FINISH)
        self._promote = client.register_script(_PROMOTE)
        self._redrive = client.register_script(_TENANT_COUNT + _REDRIVE)
        self._expire = client.register_script(_EXPIRE)

    @classmethod
    async def connect(
        cls, url: str, lease_seconds: float = 30.0, prefix: str = "ttsfleet:{jobs}:"
    ) -> RedisBackend:
        # A connection Redis closed (a restart) is dialled again at once, a few times, rather
        # than failing the call: a retried script whose reply was lost may queue its job's
        # entry twice, which the start script and the claim tokens make harmless.
        client = redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
            retry_on_error=[RedisConnectionError, TimeoutError],
        )
        backend = cls(client, lease_seconds, prefix)
        await backend._ensure_group()
        return backend

    async def _ensure_group(self) -> None:
        """Creates the stream and consumer group unless they exist (again after a data loss)."""
        try:
            await self._redis.xgroup_create(self._stream, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    async def submit(self, spec: JobSpec) -> tuple[Job, bool]:
        job_id = uuid.uuid4().hex
        idempotency = f"{self._prefix}idem:{spec.scoped_key}"
        created, found = await self._submit(
            keys=[
                idempotency,
                self._key(job_id),
                self._stream,
                self._queued,
                self._tenant_queued(spec.tenant),
            ],
            args=[job_id, spec.to_json(), time.time(), spec.scoped_key],
        )
        job = await self.get(found)
        assert job is not None, "an idempotency key points at a stored job"
        return job, bool(created)

    async def get(self, job_id: str) -> Job | None:
        fields: dict[str, str] = await self._redis.hgetall(self._key(job_id))  # type: ignore[assignment]
        return _job(fields) if fields else None

    def _tenant_queued(self, tenant: str) -> str:
        return f"{self._prefix}queued:{tenant}"

    async def queued(self, tenant: str | None = None) -> int:
        key = self._queued if tenant is None else self._tenant_queued(tenant)
        return int(await self._redis.get(key) or 0)

    async def claim(self, worker: str, wait: float) -> Claim | None:
        """See JobBackend; a consumer group lost with Redis's data (NOGROUP) is made again."""
        try:
            return await self._claim(worker, wait)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self._ensure_group()
            return None

    async def _claim(self, worker: str, wait: float) -> Claim | None:
        give_up = time.monotonic() + wait
        while True:
            await self._promote(keys=[self._delayed, self._stream], args=[time.time()])
            for message, job_id in await self._next_entries(worker, give_up):
                token = f"{worker}:{uuid.uuid4().hex}"
                started = await self._start(
                    keys=[self._key(job_id), self._stream, self._queued],
                    args=[message, CONSUMER_GROUP, token, time.time(), LOST],
                )
                if started:
                    job = await self.get(job_id)
                    assert job is not None
                    return Claim(job, token)
            if time.monotonic() >= give_up:
                return None

    async def _next_entries(self, worker: str, give_up: float) -> list[tuple[str, str]]:
        """Entries abandoned by a dead worker first, then new ones (blocking briefly)."""
        _, abandoned, _ = await self._redis.xautoclaim(
            self._stream, CONSUMER_GROUP, worker, self._lease_ms, "0-0", count=1
        )
        entries = [(message, fields["id"]) for message, fields in abandoned if fields]
        if entries:
            return entries
        block = max(int(min(give_up - time.monotonic(), BLOCK_MS / 1000) * 1000), 1)
        found: Any = await self._redis.xreadgroup(
            CONSUMER_GROUP, worker, {self._stream: ">"}, count=1, block=block
        )
        return [
            (message, fields["id"]) for _, messages in found or () for message, fields in messages
        ]

    async def heartbeat(self, claim: Claim, pieces_done: int, pieces_total: int) -> bool:
        worker = claim.token.rpartition(":")[0]
        held = await self._heartbeat(
            keys=[self._key(claim.job.id), self._stream],
            args=[claim.token, CONSUMER_GROUP, worker, pieces_done, pieces_total, time.time()],
        )
        return bool(held)

    async def _end(
        self,
        claim: Claim,
        state: JobState,
        run_at: float = 0.0,
        refund: bool = False,
        **fields: str,
    ) -> bool:
        pairs = [item for pair in fields.items() for item in pair]
        done = await self._finish(
            keys=[
                self._key(claim.job.id),
                self._stream,
                self._delayed,
                self._queued,
                self._ended,
                self._dead,
            ],
            args=[
                claim.token,
                CONSUMER_GROUP,
                state.value,
                time.time(),
                run_at,
                claim.job.id,
                int(refund),
                *pairs,
            ],
        )
        return bool(done)

    async def succeed(self, claim: Claim, result: str) -> bool:
        return await self._end(claim, JobState.SUCCEEDED, result=result, error="")

    async def retry(self, claim: Claim, error: str, delay: float) -> bool:
        return await self._end(claim, JobState.QUEUED, time.time() + delay, error=error)

    async def release(self, claim: Claim, error: str, delay: float) -> bool:
        return await self._end(
            claim, JobState.QUEUED, time.time() + delay, refund=True, error=error
        )

    async def fail(self, claim: Claim, error: str, state: JobState) -> bool:
        return await self._end(claim, state, error=error)

    async def dead_letters(self, tenant: str | None, limit: int) -> list[Job]:
        """Walks the dead-letter index newest first; a tenant's own are filtered from it."""
        found: list[Job] = []
        start = 0
        while len(found) < limit:
            batch = start + 4 * limit - 1
            ids: list[str] = await self._redis.zrevrange(self._dead, start, batch)  # type: ignore[assignment]
            if not ids:
                break
            start += len(ids)
            for job_id in ids:
                job = await self.get(job_id)
                if job and (tenant is None or job.spec.tenant == tenant):
                    found.append(job)
        return found[:limit]

    async def redrive(self, job_id: str) -> bool:
        done = await self._redrive(
            keys=[self._key(job_id), self._stream, self._queued, self._dead, self._ended],
            args=[job_id, time.time()],
        )
        return bool(done)

    async def expire(self, before: float, limit: int) -> list[str]:
        results: list[str] = await self._expire(
            keys=[self._ended, self._dead], args=[before, limit, self._prefix]
        )
        return results

    async def close(self) -> None:
        await self._redis.aclose()
