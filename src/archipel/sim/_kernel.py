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
from datetime import datetime, timedelta


class Event:
    """One scheduled action, which can be cancelled before it runs."""

    __slots__ = ("action", "cancelled", "priority", "sequence", "time")

    def __init__(self, time: float, priority: int, sequence: int, action: Callable[[], None]):
        self.time = time
        self.priority = priority
        self.sequence = sequence
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Kernel:
    """The virtual clock (seconds since ``start``) and the events still to run.

    The heap holds ``(time, priority, sequence, event)`` tuples: the sequence is
    unique, so two entries never compare their events, and tuples compare in C
    (a comparison method of the event's own would be most of a run's time).
    """

    def __init__(self, start: datetime) -> None:
        self.start = start  # naive UTC, as the control plane's store keeps times
        self.now = 0.0
        self.events = 0  # actions run so far
        self._heap: list[tuple[float, int, int, Event]] = []
        self._sequence = itertools.count()

    def at(self, time: float, action: Callable[[], None], priority: int = 0) -> Event:
        """Run ``action`` at ``time`` (never before now)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time} s: the clock is at {self.now} s")
        sequence = next(self._sequence)
        event = Event(time, priority, sequence, action)
        heapq.heappush(self._heap, (time, priority, sequence, event))
        return event

    def after(self, delay: float, action: Callable[[], None], priority: int = 0) -> Event:
        return self.at(self.now + max(delay, 0.0), action, priority)

    def clock(self) -> datetime:
        """The virtual time as a date and time (for the control plane's records)."""
        return self.start + timedelta(seconds=self.now)

    def run(self, until: float | None = None) -> None:
        """Run events in order until none is left or the next is after ``until``."""
        heap, pop = self._heap, heapq.heappop
        end = float("inf") if until is None else until
        ran = 0
        try:
            while heap:
                if heap[0][0] > end:
                    break
                time, _, _, event = pop(heap)
                if event.cancelled:
                    continue
                self.now = time
                ran += 1
                event.action()
        finally:
            self.events += ran
        if until is not None:
            self.now = max(self.now, until)
