"""Never launch one attempt twice: a running attempt that its site forgets is lost,
and the run restarts as a new attempt, never as the same one again.

(Relaunching is right only for an attempt recorded as launching, which a crash
may have kept from ever reaching the backend; see test_reconciler.py.)
"""

from __future__ import annotations

from typing import Any

from archipel.backends import FakeBackend
from archipel.controlplane import Reconciler, Store
from archipel.core import RunState, parse_workload


def _workload() -> Any:
    return parse_workload(
        {
            "name": "train",
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "personal"},
            "run": {"command": ["python", "train.py"]},
        }
    )


def _forget(site: FakeBackend, attempt_id: str) -> None:
    """The site loses its record of the attempt (a scheduler restarted without state)."""
    del site._jobs[attempt_id]


def test_a_running_attempt_the_site_forgot_is_lost_not_launched_again(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", _workload())
    reconciler.step()
    reconciler.step()
    running = store.get(run.id)
    assert running is not None and running.state is RunState.RUNNING
    assert running.site == "paris" and fakes["paris"].launches == 1
    first = f"{run.id}-a1"

    _forget(fakes["paris"], first)
    reconciler.step()

    assert first not in fakes["paris"]._jobs, "the forgotten attempt was launched again"
    assert fakes["paris"].launches == 1
    moved = store.get(run.id)
    assert moved is not None
    assert moved.attempt_id != first and moved.site != "paris"
    assert moved.blocked_sites == ("paris",) and moved.restarts == 1
    events = store.events(run.id)
    lost = [e for e in events if e.to_state == RunState.PREEMPTED.value]
    assert lost and f"no longer knows attempt {first}" in (lost[-1].detail or "")
    assert sum(f.launches for f in fakes.values()) == 2  # a1 once, then a2 once
