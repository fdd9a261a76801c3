"""The reconciler's loop: rounds until the stop event is set, and a failed round is not the end.

Rounds are counted by the health checks of one site (each round asks every site
once); the test sets the stop event from inside a round, so the loop runs in the
test's own thread and no timing is involved.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from archipel.backends import FakeBackend, SiteHealth
from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.core import CatalogSnapshot, RunState, parse_workload
from archipel.policy import Policy

from .conftest import SITES

TRAIN: dict[str, Any] = {
    "name": "train",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "train.py"]},
}


class Rounds(FakeBackend):
    """A fake site that counts the rounds (its health checks) and sets ``stop`` at round ``last``."""

    def __init__(self, name: str, stop: threading.Event, last: int) -> None:
        super().__init__(name)
        self.stop = stop
        self.last = last
        self.rounds = 0

    def health(self) -> SiteHealth:
        self.rounds += 1
        if self.rounds == self.last:
            self.stop.set()
        return super().health()


class FailingFirst(Store):
    """A store whose first ``failures`` reads of the runs fail, as an unreachable database does."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def runs(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT runs", {}, ConnectionError("the database is gone"))
        return super().runs(*args, **kwargs)


@pytest.fixture
def build(
    store: Store, snapshot: CatalogSnapshot, policy: Policy, tmp_path: Path
) -> Callable[..., Reconciler]:
    """``build(backends, on=store)``: a reconciler on the conftest sites, over ``on``."""

    def make(backends: Mapping[str, FakeBackend], on: Store = store) -> Reconciler:
        sites = {s.name: Site(s, backends[s.name]) for s in SITES}
        return Reconciler(on, sites, SitePlacer(SITES, snapshot, policy), tmp_path / "ckpt")

    return make


def looping(
    build: Callable[..., Reconciler], stop: threading.Event, last: int, **on: Store
) -> Rounds:
    """Run the loop of a reconciler whose paris site ends it at round ``last``; that site."""
    counter = Rounds("paris", stop, last)
    backends = {s.name: FakeBackend(s.name) for s in SITES} | {"paris": counter}
    build(backends, **on).run_forever(stop, interval=0.0)
    return counter


@pytest.mark.parametrize("last", [1, 2, 5], ids=["stopped in round 1", "in round 2", "in round 5"])
def test_the_loop_ends_with_the_round_in_which_stop_was_set(
    build: Callable[..., Reconciler], last: int
) -> None:
    stop = threading.Event()
    assert looping(build, stop, last).rounds == last


def test_a_loop_told_to_stop_before_it_starts_runs_no_round(
    build: Callable[..., Reconciler],
) -> None:
    stop = threading.Event()
    stop.set()
    assert looping(build, stop, last=1).rounds == 0


def test_a_failed_round_is_logged_and_the_next_rounds_run(
    build: Callable[..., Reconciler], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run = store.submit("acme", parse_workload(TRAIN))
    flaky = FailingFirst(store.url, failures=1)
    stop = threading.Event()
    try:
        with caplog.at_level(logging.INFO, logger="archipel.reconciler"):
            rounds = looping(build, stop, last=3, on=flaky).rounds
    finally:
        flaky.close()
    assert rounds == 3
    failed = [r for r in caplog.records if r.getMessage() == "reconcile round failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None
    # round 1 failed; round 2 placed and launched the run; round 3 saw it running
    after = store.get(run.id)
    assert after is not None and after.state is RunState.RUNNING
    assert [e.to_state for e in store.events(run.id)] == [
        "pending",
        "placing",
        "launching",
        "running",
    ]
