"""Which waiting runs a round acts on: in turns across tenants, by dominant share (I/O-free).

A tenant's *dominant share* is the larger of its share of the declared slots
and of the declared GPUs held by its active runs. A round takes the waiting
runs in turns: each tenant's oldest first, one run per tenant per turn, and
within a turn the tenant with the smallest share first, counting what the
round has placed so far.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from archipel.controlplane._records import RunView
from archipel.controlplane._sites import Site
from archipel.core import parse_accelerator_spec

_T = TypeVar("_T")


def in_turns(
    queues: Mapping[str, Sequence[_T]], share: Callable[[str], float], limit: int
) -> Iterator[_T]:
    """At most ``limit`` items of ``queues`` (tenant -> its items in order), in turns.

    A turn takes the next item of every tenant that has one left, the tenant with
    the smallest ``share`` first (ties by name). ``share`` is asked again after
    each item, so what the caller did with it (a run placed) counts at once.
    """
    left = {tenant: deque(items) for tenant, items in queues.items() if items}
    turns = [(0, share(t), t) for t in left]
    heapq.heapify(turns)
    for _ in range(limit):
        if not turns:
            return
        turn, _, tenant = heapq.heappop(turns)
        yield left[tenant].popleft()
        if left[tenant]:
            heapq.heappush(turns, (turn + 1, share(tenant), tenant))


def gpus_per_slot(accelerators: str) -> float:
    """GPUs one slot of a site offers (``cpu:N`` is none)."""
    offered = parse_accelerator_spec(accelerators)
    return 0.0 if offered.is_cpu else offered.count


class Capacity:
    """What the declared sites hold: per site, what one slot counts for (slots, GPUs)."""

    def __init__(self, sites: Mapping[str, Site]) -> None:
        self.slot = {n: (1.0, gpus_per_slot(s.spec.accelerators)) for n, s in sites.items()}
        self.total = (
            float(sum(s.spec.slots for s in sites.values())),
            sum(s.spec.slots * self.slot[n][1] for n, s in sites.items()),
        )

    def shares(self) -> Shares:
        """The tenants' shares of this capacity, none held yet (one per round)."""
        return Shares(self)


class Shares:
    """The tenants' dominant shares of the declared sites, as runs are counted in."""

    def __init__(self, capacity: Capacity) -> None:
        self._capacity = capacity
        self._held: dict[str, list[float]] = {}  # tenant -> [slots, GPUs]

    def hold(self, run: RunView) -> None:
        """Count ``run``'s slot (and the GPUs of its site's slot) against its tenant."""
        slots, gpus = self._capacity.slot.get(run.site or "", (1.0, 0.0))
        held = self._held.setdefault(run.tenant, [0.0, 0.0])
        held[0] += slots
        held[1] += gpus

    def of(self, tenant: str) -> float:
        """The tenant's dominant share: the larger of its shares of the slots and the GPUs."""
        slots, gpus = self._held.get(tenant, (0.0, 0.0))
        total_slots, total_gpus = self._capacity.total
        return max(
            slots / total_slots if total_slots else 0.0,
            gpus / total_gpus if total_gpus else 0.0,
        )
