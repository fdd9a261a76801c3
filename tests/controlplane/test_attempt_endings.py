"""The outbox of ended attempts: every way an attempt ends puts it there once, with the
priced terms of the site it was placed on, until whoever meters it says it is done."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from archipel.backends import AttemptState, FakeBackend
from archipel.controlplane import AttemptTerms, Reconciler, Store
from archipel.core import RunState, parse_workload


def workload(cls: str = "personal") -> Any:
    return parse_workload(
        {
            "name": "train",
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": cls},
            "run": {"command": ["python", "train.py"], "max_restarts": 1},
        }
    )


#: paris, as tests/controlplane/conftest.py declares it
PARIS = AttemptTerms("scaleway", "fr-par", "FR", "cpu", Decimal(0), Decimal(1), "USD")


def _running(store: Store, reconciler: Reconciler) -> str:
    run = store.submit("acme", workload())  # personal: the EU site paris, the cheapest
    reconciler.step()
    reconciler.step()
    current = store.get(run.id)
    assert current is not None and current.state is RunState.RUNNING and current.site == "paris"
    return run.id


@pytest.mark.parametrize(
    ("how", "state"),
    [
        ("exits 0", AttemptState.SUCCEEDED),
        ("exits 1", AttemptState.FAILED),
        ("is preempted", AttemptState.PREEMPTED),
        ("is cancelled by its user", AttemptState.CANCELLED),
    ],
)
def test_an_attempt_that_ends_waits_in_the_outbox_with_its_terms(
    store: Store,
    reconciler: Reconciler,
    fakes: dict[str, FakeBackend],
    how: str,
    state: AttemptState,
) -> None:
    run_id = _running(store, reconciler)
    attempt = f"{run_id}-a1"
    assert store.endings() == []  # running: not ended
    if how == "exits 0":
        fakes["paris"].finish(attempt, 0)
    elif how == "exits 1":
        fakes["paris"].finish(attempt, 1)
    elif how == "is preempted":
        fakes["paris"].preempt(attempt)
    if how == "is cancelled by its user":
        run = store.get(run_id)
        assert run is not None
        reconciler.cancel(run)
    else:
        reconciler.step()
    (ending,) = [e for e in store.endings() if e.attempt_id == attempt]
    assert (ending.run_id, ending.tenant, ending.name, ending.site) == (
        run_id, "acme", "train", "paris"
    )  # fmt: skip
    assert ending.state is state
    assert ending.terms == PARIS
    assert ending.workload.data.class_ == "personal"
    (recorded,) = store.attempts(run_id)[:1]
    assert ending.started == recorded.created_at <= ending.ended


def test_an_ending_is_recorded_once_and_kept_until_forgotten(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run_id = _running(store, reconciler)
    attempt = f"{run_id}-a1"
    fakes["paris"].finish(attempt, 0)
    reconciler.step()
    first = store.endings()
    # observed again, or recorded again by another path: the first end stands
    store.update_attempt(store_update(attempt, AttemptState.CANCELLED))
    store.update_attempts([store_update(attempt, AttemptState.SUCCEEDED)])
    assert store.endings() == first
    # a restarted control plane finds it still there: nothing was metered yet
    again = Store(store.url)
    try:
        assert again.endings() == first
        again.forget_endings([attempt])
        assert again.endings() == []
        again.forget_endings([attempt])  # forgetting twice is harmless
    finally:
        again.close()
    assert store.endings() == []


def store_update(attempt_id: str, state: AttemptState) -> Any:
    from archipel.controlplane import AttemptUpdate

    return AttemptUpdate(attempt_id, state)


def test_terms_round_trip_exactly() -> None:
    terms = AttemptTerms("aws", "us-east-1", None, "H100", Decimal("8"), Decimal("98.32"), "USD")
    assert AttemptTerms.from_json(terms.to_json()) == terms
    assert '"98.32"' in terms.to_json()  # a string, never a float
