"""A fixed list of pods, for the local fleet and tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from ttsfleet.router.discovery import PoolEndpoints, Publish, Topology

Entry = tuple[str, str, Sequence[str]]
"""(address, pool, voices): one pod listening on ``host:port``."""


def topology(entries: Iterable[Entry], default_voice: str = "") -> Topology:
    """Groups pods into pools; a pool serves the voices its pods list."""
    addresses: dict[str, set[str]] = {}
    voices: dict[str, set[str]] = {}
    for address, pool, pod_voices in entries:
        addresses.setdefault(pool, set()).add(address)
        voices.setdefault(pool, set()).update(pod_voices)
    pools = {
        name: PoolEndpoints(name, frozenset(voices[name]), frozenset(members))
        for name, members in addresses.items()
    }
    return Topology(pools, default_voice)


class StaticDiscovery:
    """Publishes its list once; `update` replaces it (a local worker restarted elsewhere)."""

    def __init__(self, entries: Iterable[Entry], default_voice: str = "") -> None:
        self._default_voice = default_voice
        self._topology = topology(entries, default_voice)
        self._publish: Publish | None = None

    def update(self, entries: Iterable[Entry]) -> None:
        self._topology = topology(entries, self._default_voice)
        if self._publish:
            self._publish(self._topology)

    async def run(self, publish: Publish) -> None:
        self._publish = publish
        publish(self._topology)
        await asyncio.Event().wait()
