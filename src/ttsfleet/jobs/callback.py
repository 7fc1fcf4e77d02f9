"""Tells a caller its job has ended: the job's public status POSTed as JSON to its callback URL.

A callback is a courtesy, not part of the job: it is tried a few times with
backoff and a failure is logged, never turned into a failed job (the status
endpoint stays the source of truth).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from ttsfleet.jobs.model import Job
from ttsfleet.jobs.retry import RetryPolicy

log = logging.getLogger(__name__)


async def notify(
    client: httpx.AsyncClient, job: Job, policy: RetryPolicy, attempts: int = 3
) -> bool:
    """POSTs the job's status to its callback URL; True once the receiver answered 2xx."""
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(job.spec.callback_url, json=job.public())
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        log.warning(
            "callback failed",
            extra={"job": job.id, "attempt": attempt, "error": problem},
        )
        if attempt < attempts:
            await asyncio.sleep(policy.delay(attempt))
    return False
