"""A fixed list of pods, for the local fleet and tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from ttsfleet.router.discovery import PoolEndpoints, Publish, Topology

Entry = tuple[str, str, Sequence[str]] | tuple[str, str, Sequence[str], str]
"""(address, pool, voices[, revision]): one pod listening on ``host:port``."""

Weights = Mapping[str, Mapping[str, int]]
"""pool → revision → share of the pool's traffic (pools in a canary rollout)."""


def topology(
    entries: Iterable[Entry],
    default_voice: str = "",
    sleepers: Mapping[str, Sequence[str]] | None = None,
    weights: Weights | None = None,
) -> Topology:
    """Groups pods into pools; a pool serves the voices its pods list.

    `sleepers` (pool → voices) are pools that scale from zero: known with or
    without pods, so their requests are held while they wake.
    """
    sleepers = sleepers or {}
    weights = weights or {}
    addresses: dict[str, set[str]] = {name: set() for name in sleepers}
    voices: dict[str, set[str]] = {name: set(v) for name, v in sleepers.items()}
    revisions: dict[str, dict[str, str]] = {}
    for address, pool, pod_voices, *revision in entries:
        addresses.setdefault(pool, set()).add(address)
        voices.setdefault(pool, set()).update(pod_voices)
        revisions.setdefault(pool, {})[address] = "".join(revision)
    pools = {
        name: PoolEndpoints(
            name,
            frozenset(voices[name]),
            frozenset(members),
            scales_from_zero=name in sleepers,
            revisions=revisions.get(name, {}),
            weights=weights.get(name, {}),
        )
        for name, members in addresses.items()
    }
    return Topology(pools, default_voice)


class StaticDiscovery:
    """Publishes its list once; `update` replaces it (a local worker restarted elsewhere)."""

    def __init__(
        self,
        entries: Iterable[Entry],
        default_voice: str = "",
        sleepers: Mapping[str, Sequence[str]] | None = None,
        weights: Weights | None = None,
    ) -> None:
        self._default_voice = default_voice
        self._sleepers = dict(sleepers or {})
        self._weights = weights
        self._topology = topology(entries, default_voice, self._sleepers, weights)
        self._publish: Publish | None = None

    def update(self, entries: Iterable[Entry]) -> None:
        self._topology = topology(entries, self._default_voice, self._sleepers, self._weights)
        if self._publish:
            self._publish(self._topology)

    async def run(self, publish: Publish) -> None:
        self._publish = publish
        publish(self._topology)
        await asyncio.Event().wait()
