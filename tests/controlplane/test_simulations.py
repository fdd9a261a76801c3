"""The simulations queue: submitted, claimed oldest first and once, ended once, per tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from archipel.controlplane import SimulationState, Store
from archipel.controlplane._simulations import TRANSITIONS


def test_claims_take_the_oldest_queued_once(store: Store) -> None:
    first = store.simulations.submit("acme", "a", "name: a", "t.csv", "x")
    second = store.simulations.submit("globex", "b", "name: b", "t.csv", "y")
    got = store.simulations.claim()
    assert got is not None and (got.id, got.scenario, got.trace) == (first, "name: a", "x")
    again = store.simulations.claim()
    assert again is not None and again.id == second
    assert store.simulations.claim() is None
    view = store.simulations.get(first, "acme")
    assert view is not None and view.state is SimulationState.RUNNING


def test_an_ended_simulation_keeps_its_result_and_ends_once(store: Store) -> None:
    sim_id = store.simulations.submit("acme", "a", "name: a", "t.csv", "x")
    assert not store.simulations.succeed(sim_id, {"k": 1})  # queued: not running yet
    assert store.simulations.claim() is not None
    assert store.simulations.succeed(sim_id, {"strategies": []})
    assert not store.simulations.fail(sim_id, "late")  # ended: stays as it ended
    view = store.simulations.get(sim_id, "acme")
    assert view is not None and view.state is SimulationState.SUCCEEDED
    assert view.result == {"strategies": []} and view.message is None


def test_a_tenant_sees_only_its_own(store: Store) -> None:
    mine = store.simulations.submit("acme", "a", "name: a", "t.csv", "x")
    store.simulations.submit("globex", "b", "name: b", "t.csv", "y")
    assert [s.id for s in store.simulations.list("acme")] == [mine]
    assert store.simulations.get(mine, "globex") is None
    assert store.simulations.unfinished("acme") == 1


def test_only_the_tables_moves_are_made() -> None:
    q, r, s, f = list(SimulationState)
    assert set(TRANSITIONS) == {(q, r), (r, s), (r, f)}
    assert all(not old.finished for old, _ in TRANSITIONS)


def test_running_ones_older_than_the_limit_are_abandoned(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1)]
    store = Store(f"sqlite:///{tmp_path}/s.db", clock=lambda: now[0])
    store.migrate()
    try:
        old = store.simulations.submit("acme", "a", "name: a", "t.csv", "x")
        assert store.simulations.claim() is not None
        now[0] += timedelta(minutes=10)
        fresh = store.simulations.submit("acme", "b", "name: b", "t.csv", "x")
        assert store.simulations.claim() is not None
        assert store.simulations.abandon(timedelta(minutes=5), "stopped") == 1
        states = {s.id: s.state for s in store.simulations.list("acme")}
        assert states == {old: SimulationState.FAILED, fresh: SimulationState.RUNNING}
    finally:
        store.close()


@pytest.mark.parametrize("state", list(SimulationState))
def test_finished_is_succeeded_or_failed(state: SimulationState) -> None:
    assert state.finished == (state in (SimulationState.SUCCEEDED, SimulationState.FAILED))
