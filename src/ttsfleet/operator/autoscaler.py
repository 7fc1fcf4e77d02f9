"""The autoscaler's tick: read a pool's load, decide, scale, report.

Runs from a kopf timer on every pool. The decision is the pure
``autoscale_policy.decide``; acting on it goes through the pool's scale
subresource (exactly what HPA or KEDA would do), so the change shows up
as ``spec.replicas`` and is rolled out by the ordinary reconcile. Each
change is an Event on the pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ttsfleet.manifests import ManifestError, Pool, pool_from_manifest
from ttsfleet.operator.apply import Api
from ttsfleet.operator.autoscale_policy import Action, decide
from ttsfleet.operator.load import AddressResolver, read_pool_load
from ttsfleet.operator.reconciler import Reconciler, Views, event_target, now_iso
from ttsfleet.operator.state import PoolKey, PoolState, PoolStates
from ttsfleet.tls import ClientTLS

logger = logging.getLogger(__name__)


class Autoscaler:
    def __init__(
        self,
        api: Api,
        states: PoolStates,
        reconciler: Reconciler,
        resolve: AddressResolver | None,
        load_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        tls: ClientTLS | None = None,
    ) -> None:
        self._tls = tls
        self._api = api
        self._states = states
        self._reconciler = reconciler
        self._resolve = resolve
        self._load_timeout = load_timeout
        self._clock = clock

    async def tick(self, views: Views, key: PoolKey, body: Mapping[str, Any]) -> None:
        """One period of one pool: retry a failed reconcile, read load, maybe scale."""
        state = self._states[key]
        if state.needs_reconcile:
            await self._reconciler.reconcile(views, key)
        if self._resolve is not None:
            state.load = await read_pool_load(
                views.pods(key), self._resolve, self._load_timeout, self._tls
            )
        try:
            pool = pool_from_manifest(body)
        except ManifestError:
            pool = None  # the reconcile reports it
        if pool is not None and pool.autoscaling.enabled:
            await self._scale(key, body, pool, state)
        else:
            state.history, state.replicas_decided = (), None
        await self._reconciler.publish_status(views, key)

    async def _scale(
        self, key: PoolKey, body: Mapping[str, Any], pool: Pool, state: PoolState
    ) -> None:
        decision = decide(
            current=pool.replicas,
            sample=state.load,
            spec=pool.autoscaling,
            history=state.history,
            now=self._clock(),
            previous=state.replicas_decided,
        )
        state.history = decision.history
        state.replicas_decided = decision.replicas
        if decision.action is Action.HOLD:
            return
        await self._api.scale(*key, decision.replicas)
        state.last_scale_time = now_iso()
        logger.info("%s/%s: %s", *key, decision.message)
        kopf.info(event_target(body), reason=decision.action.value, message=decision.message)
