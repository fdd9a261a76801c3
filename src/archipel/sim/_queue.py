"""Requests served by a pool of replicas, first come first served, on the kernel's clock.

The queueing model of a service (study 2: serving on spot): requests arrive, wait in one
queue, and each is served by the first replica free for its service time. The number of
replicas may change while it runs (a spot replica preempted, another one ready):

- more replicas: the new ones take waiting requests at once;
- fewer: idle replicas go first; a busy one leaves when its request is done
  (``drain``), or at once with its request put back at the head of the queue
  (``preempt``: the request starts over on the next free replica).

Each request's wait (arrival to the start of its last service) and latency (arrival to
done) are recorded. The model is checked against the Erlang C formula of an M/M/c queue
in the tests.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from dataclasses import dataclass, field

from archipel.sim._kernel import Event, Kernel


@dataclass(slots=True)
class Request:
    """One request: when it came, how long it needs, and what happened to it."""

    number: int
    arrival: float
    service: float
    started: float | None = None
    done: float | None = None
    restarts: int = 0

    @property
    def wait(self) -> float:
        assert self.started is not None, "not served yet"
        return self.started - self.arrival

    @property
    def latency(self) -> float:
        assert self.done is not None, "not done yet"
        return self.done - self.arrival


@dataclass(slots=True)
class _Busy:
    request: Request
    ends: Event


@dataclass
class ReplicaPool:
    """FCFS service by ``replicas`` identical servers (see the module's text)."""

    kernel: Kernel
    replicas: int
    queue: deque[Request] = field(default_factory=deque)
    busy: dict[int, _Busy] = field(default_factory=dict)  # replica number -> its request
    finished: list[Request] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _leaving: int = 0  # busy replicas to drop once their request is done

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"replicas must be at least 0, not {self.replicas}")
        self._free = list(range(self.replicas))

    def arrive(self, service: float) -> Request:
        """A request arrives now, needing ``service`` seconds of one replica."""
        request = Request(next(self._numbers), self.kernel.now, service)
        self.queue.append(request)
        self._dispatch()
        return request

    def resize(self, replicas: int, preempt: bool = False) -> None:
        """Serve with ``replicas`` from now on (see the module's text for fewer)."""
        if replicas < 0:
            raise ValueError(f"replicas must be at least 0, not {replicas}")
        total = len(self._free) + len(self.busy) - self._leaving
        if replicas > total:
            back = min(self._leaving, replicas - total)  # cancel pending departures first
            self._leaving -= back
            top = max([*self._free, *self.busy, -1]) + 1
            self._free += [top + k for k in range(replicas - total - back)]
        else:
            excess = total - replicas
            drop_idle = min(excess, len(self._free))
            del self._free[len(self._free) - drop_idle :]
            excess -= drop_idle
            if preempt:
                for replica in sorted(self.busy, reverse=True)[:excess]:
                    held = self.busy.pop(replica)
                    held.ends.cancel()
                    held.request.restarts += 1
                    self.queue.appendleft(held.request)
            else:
                self._leaving += excess
        self._dispatch()

    def _dispatch(self) -> None:
        while self.queue and self._free:
            replica = self._free.pop(0)
            request = self.queue.popleft()
            request.started = self.kernel.now
            ends = self.kernel.after(request.service, functools.partial(self._done, replica))
            self.busy[replica] = _Busy(request, ends)

    def _done(self, replica: int) -> None:
        held = self.busy.pop(replica)
        held.request.done = self.kernel.now
        self.finished.append(held.request)
        if self._leaving:
            self._leaving -= 1
        else:
            self._free.append(replica)
            self._free.sort()
        self._dispatch()
