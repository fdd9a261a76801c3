"""A discrete-event kernel: a virtual clock and a heap of events.

Events are ordered by ``(time, priority, sequence)``: at one instant the lower
priority runs first, and among equals the one scheduled first, so a run is a
pure function of what was scheduled (no wall clock, no hash order). Actions are
plain callables; an action may schedule more. A scheduled event can be
cancelled (a job's completion, once the job is preempted).

A heap of tuples rather than SimPy: the simulated parts here are callbacks (a
backend's completion, an outage's start, a reconciler round), not processes
that wait on each other, and the real reconciler must run as an ordinary call
on the simulated time, which a process framework would only wrap.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(order=True, slots=True)
class Event:
    """One scheduled action; compare by (time, priority, sequence) only."""

    time: float
    priority: int
    sequence: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Kernel:
    """The virtual clock (seconds since ``start``) and the events still to run."""

    def __init__(self, start: datetime) -> None:
        self.start = start  # naive UTC, as the control plane's store keeps times
        self.now = 0.0
        self.events = 0  # actions run so far
        self._heap: list[Event] = []
        self._sequence = itertools.count()

    def at(self, time: float, action: Callable[[], None], priority: int = 0) -> Event:
        """Run ``action`` at ``time`` (never before now)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time} s: the clock is at {self.now} s")
        event = Event(time, priority, next(self._sequence), action)
        heapq.heappush(self._heap, event)
        return event

    def after(self, delay: float, action: Callable[[], None], priority: int = 0) -> Event:
        return self.at(self.now + max(delay, 0.0), action, priority)

    def clock(self) -> datetime:
        """The virtual time as a date and time (for the control plane's records)."""
        return self.start + timedelta(seconds=self.now)

    def run(self, until: float | None = None) -> None:
        """Run events in order until none is left or the next is after ``until``."""
        heap = self._heap
        while heap:
            if until is not None and heap[0].time > until:
                self.now = max(self.now, until)
                return
            event = heapq.heappop(heap)
            if event.cancelled:
                continue
            self.now = event.time
            self.events += 1
            event.action()
        if until is not None:
            self.now = max(self.now, until)
