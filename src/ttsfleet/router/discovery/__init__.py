"""Where the fleet's pods are.

A discovery source publishes the whole `Topology` whenever it changes; the
router's datastore follows it. Sources know nothing of the router's state, so
the same router runs behind Kubernetes or a fixed local list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PoolEndpoints:
    """A set of pods that each serve every voice of the pool.

    During a canary rollout they run two revisions: `revisions` says which
    each address runs and `weights` how much of the pool's traffic each
    revision gets (empty: the pods are interchangeable).
    """

    name: str
    voices: frozenset[str]
    addresses: frozenset[str] = frozenset()
    revisions: Mapping[str, str] = field(default_factory=dict)
    weights: Mapping[str, int] = field(default_factory=dict)
    # The pool may sleep at zero pods; a request for it is held while it is woken.
    scales_from_zero: bool = False


@dataclass(frozen=True)
class Topology:
    """Every pool the router may send to, and the voice for requests that name none.

    An empty default voice leaves the choice to the pod that gets the request.
    """

    pools: Mapping[str, PoolEndpoints] = field(default_factory=dict)
    default_voice: str = ""


Publish = Callable[[Topology], None]


class Discovery(Protocol):
    async def run(self, publish: Publish) -> None:
        """Publishes the topology now and after every change, until cancelled."""


@runtime_checkable
class Waker(Protocol):
    async def wake(self, pool: str) -> None:
        """Asks for a first pod of a pool at zero; returns once asked, not once it is ready.

        Called again while requests wait, so asking twice must be harmless.
        """
