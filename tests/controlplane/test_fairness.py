"""Fairness between tenants: a round's work is bounded, and waiting runs are taken in
turns across tenants, the tenant holding the smallest share first.

Runs against SQLite and PostgreSQL alike (the ``store`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.backends import FakeBackend
from archipel.controlplane import Store
from archipel.controlplane._fairness import in_turns
from archipel.core import RunState, parse_workload

from .conftest import SITES, MakeReconciler


def workload(name: str, cls: str = "personal") -> Any:
    return parse_workload(
        {
            "name": name,
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": cls},  # personal: paris and frankfurt (4 slots); public: all 6
            "run": {"command": ["python", "train.py"]},
        }
    )


def submit(store: Store, tenant: str, count: int, cls: str = "personal") -> list[str]:
    return [store.submit(tenant, workload(f"{tenant}{i}", cls)).id for i in range(count)]


def state(store: Store, run_id: str) -> RunState:
    run = store.get(run_id)
    assert run is not None
    return run.state


TENANTS = ["acme", "bob", "carol", "dave", "eve"]


@given(
    sizes=st.dictionaries(st.sampled_from(TENANTS), st.integers(0, 30)),
    shares=st.fixed_dictionaries({t: st.floats(0, 1) for t in TENANTS}),
    limit=st.integers(1, 80),
)
def test_turns_give_every_tenant_one_item_per_turn_least_share_first(
    sizes: dict[str, int], shares: dict[str, float], limit: int
) -> None:
    queues = {t: [(t, i) for i in range(n)] for t, n in sizes.items()}
    taken = list(in_turns(queues, shares.__getitem__, limit))
    assert len(taken) == min(limit, sum(sizes.values()))
    counts = {t: sum(1 for who, _ in taken if who == t) for t in queues}
    for t, n in counts.items():  # each tenant's oldest first, nothing twice
        assert [i for who, i in taken if who == t] == list(range(n))
    unfinished = [counts[t] for t in queues if counts[t] < sizes[t]]
    if unfinished:  # round robin: tenants with items left are at most one turn apart
        assert max(counts.values()) - min(unfinished) <= 1
    for turn in range(max(counts.values(), default=0)):  # within a turn: least share first
        order = [t for t, i in taken if i == turn]
        assert order == sorted(order, key=lambda t: (shares[t], t))


def test_the_store_reads_each_tenants_oldest_waiting_runs_only(store: Store) -> None:
    acme = submit(store, "acme", 5)
    bob = submit(store, "bob", 2)
    queued = store.queued([RunState.PENDING], per_tenant=3)
    assert {t: [r.id for r in runs] for t, runs in queued.items()} == {
        "acme": acme[:3],
        "bob": bob,
    }


@pytest.mark.parametrize(
    ("bound", "pending", "acted"),
    [
        pytest.param(10, 250, 10, id="a burst of 250: the round acts on 10"),
        pytest.param(10, 4, 4, id="fewer waiting than the bound: all of them"),
        pytest.param(1, 3, 1, id="a bound of one"),
    ],
)
def test_a_round_acts_on_at_most_its_bound(
    store: Store, make_reconciler: MakeReconciler, bound: int, pending: int, acted: int
) -> None:
    big = [s.model_copy(update={"slots": 1000}) for s in SITES]
    reconciler = make_reconciler(big, max_runs_per_round=bound)
    runs = submit(store, "acme", pending)
    report = reconciler.step()
    assert report.acted == acted
    assert sum(1 for r in runs if state(store, r) is RunState.LAUNCHING) == acted


def test_a_bound_below_one_is_refused(make_reconciler: MakeReconciler) -> None:
    with pytest.raises(ValueError, match="max_runs_per_round must be at least 1"):
        make_reconciler(max_runs_per_round=0)


def test_a_small_run_of_one_tenant_starts_while_another_tenant_has_a_burst_waiting(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    reconciler = make_reconciler(max_runs_per_round=8)
    burst = submit(store, "acme", 200)  # first: in FIFO order it would all go before bob
    (small,) = submit(store, "bob", 1)
    reconciler.step()
    assert state(store, small) is RunState.LAUNCHING
    assert sum(1 for r in burst if state(store, r) is RunState.LAUNCHING) == 3  # of 4 slots


def test_a_freed_slot_goes_to_the_tenant_holding_the_smallest_share(
    store: Store, make_reconciler: MakeReconciler, fakes: dict[str, FakeBackend]
) -> None:
    reconciler = make_reconciler()
    held = submit(store, "acme", 4)  # acme fills the 4 EU slots
    reconciler.step()
    reconciler.step()
    more = submit(store, "acme", 3)
    (zeta,) = submit(store, "zeta", 1)  # after acme in name and in time
    fakes["paris"].finish(f"{held[0]}-a1", 0)  # one slot frees up
    reconciler.step()
    assert state(store, zeta) is RunState.LAUNCHING
    assert all(state(store, r) is RunState.PENDING for r in more)


def test_a_tenant_whose_waiting_runs_cannot_move_does_not_use_up_the_round(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    reconciler = make_reconciler(max_runs_per_round=3)
    carol = submit(store, "carol", 4)  # carol fills the 4 EU slots
    (running,) = submit(store, "bob", 1, "public")
    reconciler.step()
    reconciler.step()
    assert all(state(store, r).active for r in [*carol, running])  # bob holds a share, acme none
    stuck = submit(store, "acme", 20)  # EU only, all full: every one waits
    (public,) = submit(store, "bob", 1, "public")  # fits on virginia
    reconciler.step()
    assert state(store, public) is RunState.LAUNCHING
    assert all(state(store, r) is RunState.PENDING for r in stuck)
