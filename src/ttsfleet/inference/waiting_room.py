"""The pod's waiting requests: interactive before batch, with a share kept for batch; tenants in turn.

A plain FIFO lets a burst of batch work (a job's hundred pieces) sit in front
of a person waiting for a reply, and lets one busy tenant hold everyone
else's requests behind its own. Here each class keeps one FIFO per tenant,
and the next request comes from the tenant whose turn it is (round robin).
Interactive requests go first, except that when both classes wait, at least
one in every `batch_share` requests taken is batch, so batch work never
starves however steady the interactive stream.
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterator
from typing import Generic, Protocol, TypeVar

from ttsfleet.wire import Priority


class Classed(Protocol):
    @property
    def priority(self) -> Priority: ...

    @property
    def tenant(self) -> str: ...


Item = TypeVar("Item", bound=Classed)


class _Class(Generic[Item]):
    """One class's waiting requests: a FIFO per tenant, tenants taking turns."""

    def __init__(self) -> None:
        self._tenants: collections.OrderedDict[str, collections.deque[Item]] = (
            collections.OrderedDict()
        )
        self.size = 0

    def add(self, item: Item) -> None:
        self._tenants.setdefault(item.tenant, collections.deque()).append(item)
        self.size += 1

    def remove(self, item: Item) -> bool:
        queue = self._tenants.get(item.tenant)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._tenants[item.tenant]
        self.size -= 1
        return True

    def pop(self) -> Item:
        """The oldest request of the tenant whose turn it is; that tenant goes to the back."""
        tenant, queue = next(iter(self._tenants.items()))
        item = queue.popleft()
        del self._tenants[tenant]
        if queue:
            self._tenants[tenant] = queue
        self.size -= 1
        return item

    def __iter__(self) -> Iterator[Item]:
        for queue in self._tenants.values():
            yield from queue


class WaitingRoom(Generic[Item]):
    """Requests accepted and not yet admitted to the engine."""

    def __init__(self, batch_share: int) -> None:
        self._batch_share = batch_share
        self._classes: dict[Priority, _Class[Item]] = {p: _Class() for p in Priority}
        # Interactive requests taken in a row while batch work waited.
        self._batch_passed_over = 0

    def add(self, item: Item) -> None:
        self._classes[item.priority].add(item)

    def remove(self, item: Item) -> bool:
        """Forgets a waiting request; False when it was not waiting."""
        return self._classes[item.priority].remove(item)

    def count(self, priority: Priority) -> int:
        return self._classes[priority].size

    def __len__(self) -> int:
        return sum(c.size for c in self._classes.values())

    def __iter__(self) -> Iterator[Item]:
        for waiting in self._classes.values():
            yield from waiting

    def pop(self, allowed: Collection[Priority] = tuple(Priority)) -> Item | None:
        """The next request to admit, of the `allowed` classes only; None when none waits."""
        interactive = self._classes[Priority.INTERACTIVE]
        batch = self._classes[Priority.BATCH]
        can_interactive = Priority.INTERACTIVE in allowed and interactive.size > 0
        can_batch = Priority.BATCH in allowed and batch.size > 0
        if can_batch and (not can_interactive or self._batch_passed_over >= self._batch_share - 1):
            self._batch_passed_over = 0
            return batch.pop()
        if can_interactive:
            self._batch_passed_over = self._batch_passed_over + 1 if batch.size else 0
            return interactive.pop()
        return None
