"""The event kernel: events run in (time, priority, sequence) order, cancelled ones never."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.sim._kernel import Kernel

START = datetime(2026, 1, 1)


def test_events_run_by_time_then_priority_then_order_of_scheduling() -> None:
    k = Kernel(START)
    seen: list[str] = []
    k.at(5, lambda: seen.append("5 late"), priority=1)
    k.at(5, lambda: seen.append("5 first"), priority=0)
    k.at(5, lambda: seen.append("5 second"), priority=0)
    k.at(1, lambda: seen.append("1"))
    k.run()
    assert seen == ["1", "5 first", "5 second", "5 late"]
    assert k.now == 5 and k.events == 4


def test_an_action_may_schedule_more_and_the_clock_follows() -> None:
    k = Kernel(START)
    times: list[float] = []

    def tick() -> None:
        times.append(k.now)
        if k.now < 30:
            k.after(10, tick)

    k.at(0, tick)
    k.run()
    assert times == [0, 10, 20, 30]
    assert k.clock() == START + timedelta(seconds=30)


def test_a_cancelled_event_never_runs() -> None:
    k = Kernel(START)
    seen: list[int] = []
    event = k.at(1, lambda: seen.append(1))
    k.at(2, lambda: seen.append(2))
    event.cancel()
    k.run()
    assert seen == [2] and k.events == 1


def test_run_until_stops_before_later_events_and_resumes() -> None:
    k = Kernel(START)
    seen: list[int] = []
    for t in (1, 2, 3):
        k.at(t, lambda t=t: seen.append(t))  # type: ignore[misc]
    k.run(until=2)
    assert seen == [1, 2] and k.now == 2
    k.run(until=10)
    assert seen == [1, 2, 3] and k.now == 10


def test_the_past_cannot_be_scheduled() -> None:
    k = Kernel(START)
    k.at(5, lambda: None)
    k.run()
    with pytest.raises(ValueError, match="the clock is at 5"):
        k.at(4, lambda: None)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=60))
def test_any_schedule_runs_sorted_and_stable(events: list[tuple[int, int]]) -> None:
    k = Kernel(START)
    seen: list[tuple[int, int, int]] = []
    for n, (t, p) in enumerate(events):
        k.at(t, lambda t=t, p=p, n=n: seen.append((t, p, n)), priority=p)  # type: ignore[misc]
    k.run()
    assert seen == sorted((t, p, n) for n, (t, p) in enumerate(events))
