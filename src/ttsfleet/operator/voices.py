"""The voice check's edges: status writes, Events, retries, and which pools use a voice.

The decisions are pure (voice_status) and the fetching is the fetcher's
(voice_check); this module runs them for kopf and writes what they say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ttsfleet.manifests import ManifestError, voice_from_manifest
from ttsfleet.operator.apply import Api
from ttsfleet.operator.reconciler import event_target, now_iso
from ttsfleet.operator.state import PoolKey
from ttsfleet.operator.voice_check import check_voice
from ttsfleet.operator.voice_status import VoiceReport, sample_rate_problem, voice_status
from ttsfleet.voices.errors import VoiceSourceError

logger = logging.getLogger("ttsfleet.operator.voices")

RETRY_SECONDS = (5, 15, 45, 120, 300)
# kopf's handler options for the check: a source that is briefly unreachable
# is tried again after each of RETRY_SECONDS, then left Degraded until edited.
VOICE_CHECK: dict[str, Any] = {"id": "voice_check", "retries": len(RETRY_SECONDS) + 1}
# Fields of ours in a voice's status (kopf keeps its own under status.kopf).
STATUS_FIELDS = (
    "observedGeneration", "pools", "conditions", "source", "sha256", "sizeBytes",
    "sampleRate", "speakerCount", "speakers", "checkedAt",
)  # fmt: skip


def _pools(users: kopf.Index[PoolKey, str], key: PoolKey) -> list[str]:
    return sorted(set(users.get(key) or ()))


class VoiceChecker:
    """Checks voices and keeps their status (including the pools that use them) current."""

    def __init__(self, api: Api) -> None:
        self._api = api

    async def run(
        self, body: kopf.Body, reason: str, retry: int, users: kopf.Index[PoolKey, str]
    ) -> None:
        """Check the voice; a transient failure raises for kopf to retry after a backoff."""
        meta, previous = body["metadata"], dict(body.get("status") or {})
        key: PoolKey = (meta["namespace"], meta["name"])
        generation = int(meta.get("generation") or 0)
        checked = previous.get("observedGeneration") == generation and previous.get("checkedAt")
        if reason == kopf.Reason.RESUME and checked:
            return  # checked before the operator restarted: once per spec, not per start
        pools = _pools(users, key)
        await self._write(key, previous, voice_status(None, previous, generation=generation,
                                                      pools=pools, now=now_iso()))  # fmt: skip
        outcome = await self._check(body)
        status = voice_status(outcome, previous, generation=generation, pools=pools, now=now_iso())
        await self._write(key, previous, status)
        target = event_target(body)
        if isinstance(outcome, VoiceReport):
            kopf.info(target, reason=outcome.reason, message=f"{outcome.source}: {outcome.message}")
            return
        kopf.warn(target, reason=outcome.reason, message=outcome.message)
        if not outcome.permanent:
            delay = RETRY_SECONDS[min(retry, len(RETRY_SECONDS) - 1)]
            raise kopf.TemporaryError(outcome.message, delay=delay)

    async def _check(self, body: kopf.Body) -> VoiceReport | VoiceSourceError:
        try:
            voice = voice_from_manifest(body)
        except ManifestError as error:
            return VoiceSourceError("InvalidSpec", str(error), permanent=True)
        try:
            report = await check_voice(self._api, body["metadata"]["namespace"], voice.source)
        except VoiceSourceError as error:
            return error
        return sample_rate_problem(voice.sample_rate, report.config) or report

    async def _write(
        self, key: PoolKey, previous: Mapping[str, Any], status: dict[str, Any]
    ) -> None:
        """Merge-patch the status, clearing our fields that the new status no longer has."""
        cleared = {k: None for k in STATUS_FIELDS if k in previous and k not in status}
        await self._api.patch_voice_status(key[0], key[1], {**cleared, **status})

    async def refresh_pools(
        self,
        namespace: str,
        voices: kopf.Index[PoolKey, Any],
        users: kopf.Index[PoolKey, str],
    ) -> None:
        """A pool came, went or changed its voices: update status.pools where it differs."""
        for key, bodies in list(voices.items()):
            if key[0] != namespace:
                continue
            for body in list(bodies):
                status = body.get("status") or {}
                pools = _pools(users, key)
                if status.get("checkedAt") and status.get("pools") != pools:
                    await self._api.patch_voice_status(key[0], key[1], {"pools": pools})
