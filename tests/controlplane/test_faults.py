"""A fault stays with its run: whatever a backend raises for one run, that run alone
fails (with the error in its history) and the round goes on for every other run.

Runs against SQLite and PostgreSQL alike (the ``store`` fixture)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import update

from archipel.backends import FakeBackend, LaunchRequest, LaunchResult, Observation, SiteHealth
from archipel.controlplane import Reconciler, Store
from archipel.controlplane._models import RunRow
from archipel.core import RunState, parse_workload

from .conftest import SITES, MakeReconciler


def workload(name: str, command: Sequence[str] = ("python", "train.py")) -> Any:
    return parse_workload(
        {
            "name": name,
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "personal"},  # EU only: paris, then frankfurt
            "run": {"command": list(command)},
        }
    )


POISON = ("python", "train.py", "--tag", "poison")


class Breaking(FakeBackend):
    """A fake that raises ``error`` from ``call`` for the attempts of a poison command.

    ``call`` is ``launch`` (raises when launching one), ``observe`` (leaves them out of
    its answer: a KeyError in the reconciler, as from a buggy backend), ``health``
    (raises on every call) or ``cancel`` (raises for them).
    """

    def __init__(self, name: str, call: str, error: Exception) -> None:
        super().__init__(name)
        self.call, self.error = call, error
        self.poisoned: set[str] = set()

    def launch(self, request: LaunchRequest) -> LaunchResult:
        if tuple(request.command) == POISON:
            self.poisoned.add(request.attempt_id)
            if self.call == "launch":
                raise self.error
        return super().launch(request)

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        seen = super().observe(attempt_ids)
        if self.call == "observe":
            return {a: o for a, o in seen.items() if a not in self.poisoned}
        return seen

    def health(self) -> SiteHealth:
        if self.call == "health":
            raise self.error
        return super().health()

    def cancel(self, attempt_id: str) -> None:
        if self.call == "cancel" and attempt_id in self.poisoned:
            raise self.error
        super().cancel(attempt_id)


def breaking(call: str, error: Exception) -> dict[str, FakeBackend]:
    return {s.name: Breaking(s.name, call, error) for s in SITES}


def last_detail(store: Store, run_id: str) -> str:
    return store.events(run_id)[-1].detail or ""


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        pytest.param(
            "launch",
            ValueError("embedded null byte"),
            "ValueError: embedded null byte",
            id="launch raises ValueError (a NUL byte in an argument)",
        ),
        pytest.param(
            "launch",
            ValueError("illegal environment variable name"),
            "ValueError: illegal environment variable name",
            id="launch raises ValueError (an env name with '=')",
        ),
        pytest.param(
            "launch",
            TypeError("expected str, bytes or os.PathLike object, not NoneType"),
            "TypeError: expected str",
            id="launch raises TypeError (a bug in the backend)",
        ),
        pytest.param(
            "observe",
            RuntimeError("unused"),
            "KeyError",
            id="observe leaves the attempt out of its answer",
        ),
    ],
)
def test_a_run_whose_backend_raises_fails_alone_and_the_others_run(
    store: Store, make_reconciler: MakeReconciler, call: str, error: Exception, says: str
) -> None:
    reconciler = make_reconciler(backends=breaking(call, error))
    poison = store.submit("mallory", workload("poison", POISON))  # first in the queue
    others = [store.submit("acme", workload(f"w{i}")) for i in range(3)]
    for _ in range(3):
        reconciler.step()  # never raises
    failed = store.get(poison.id)
    assert failed is not None and failed.state is RunState.FAILED
    assert says in last_detail(store, poison.id)
    assert store.attempts(poison.id)[-1].state == "failed"
    assert says in (store.attempts(poison.id)[-1].reason or "")
    assert all(store.get(r.id).state is RunState.RUNNING for r in others)  # type: ignore[union-attr]


def test_a_stored_spec_that_no_longer_validates_fails_that_run_alone(
    store: Store, reconciler: Reconciler
) -> None:
    broken = store.submit("mallory", workload("old"))
    with store.session() as s, s.begin():  # e.g. written by an older version
        s.execute(update(RunRow).where(RunRow.id == broken.id).values(spec='{"name": "old"}'))
    other = store.submit("acme", workload("w"))
    reconciler.step()
    assert store.get(broken.id).state is RunState.FAILED  # type: ignore[union-attr]
    assert [e.to_state for e in store.events(broken.id)] == ["pending", "failed"]
    assert "ValidationError" in last_detail(store, broken.id)
    assert store.get(other.id).state is RunState.LAUNCHING  # type: ignore[union-attr]


def test_a_launch_that_raises_oserror_blocks_the_site_and_goes_elsewhere(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    backends = breaking("none", OSError("unused"))
    backends["paris"] = Breaking("paris", "launch", ConnectionError("sbatch: connection refused"))
    reconciler = make_reconciler(backends=backends)
    run = store.submit("acme", workload("w", POISON))
    reconciler.step()  # one round: refused by paris, launched on frankfurt
    moved = store.get(run.id)
    assert moved is not None and moved.state is RunState.LAUNCHING
    assert moved.site == "frankfurt" and moved.blocked_sites == ("paris",)
    assert "ConnectionError: sbatch: connection refused" in (store.attempts(run.id)[0].reason or "")


def test_a_site_whose_health_check_raises_is_left_alone_for_the_round(
    store: Store, make_reconciler: MakeReconciler, fakes: dict[str, FakeBackend]
) -> None:
    running = store.submit("acme", workload("w0"))
    make_reconciler().step()
    assert store.get(running.id).site == "paris"  # type: ignore[union-attr]
    backends: dict[str, FakeBackend] = {**fakes}
    flaky = Breaking("paris", "health", TimeoutError("sinfo timed out"))
    flaky._jobs = fakes["paris"]._jobs  # the same site, its health check now raising
    backends["paris"] = flaky
    reconciler = make_reconciler(backends=backends)
    new = store.submit("acme", workload("w1"))
    report = reconciler.step()
    assert report.unhealthy_sites == ["paris"]
    assert store.get(new.id).site == "frankfurt"  # type: ignore[union-attr]
    kept = store.get(running.id)  # not cancelled, not moved: its state is not known this round
    assert kept is not None and kept.site == "paris" and kept.state is RunState.LAUNCHING
    assert fakes["paris"].observe([f"{running.id}-a1"])[f"{running.id}-a1"].state.value == (
        "running"
    )


class ObserveRaises(FakeBackend):
    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        raise OSError("squeue: slurm_load_jobs error: Unable to contact slurm controller")


def test_a_site_whose_observe_raises_keeps_its_runs_and_takes_no_new_ones(
    store: Store, make_reconciler: MakeReconciler, fakes: dict[str, FakeBackend]
) -> None:
    first = store.submit("acme", workload("w0"))
    make_reconciler().step()
    down = ObserveRaises("paris")
    down._jobs = fakes["paris"]._jobs
    reconciler = make_reconciler(backends={**fakes, "paris": down})
    second = store.submit("acme", workload("w1"))
    report = reconciler.step()
    assert "paris" in report.unhealthy_sites
    assert store.get(first.id).state is RunState.LAUNCHING  # type: ignore[union-attr]
    assert store.get(second.id).site == "frankfurt"  # type: ignore[union-attr]


def test_a_cancel_that_raises_still_cancels_and_says_what_may_be_left(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    reconciler = make_reconciler(backends=breaking("cancel", RuntimeError("scancel: bad id")))
    run = store.submit("acme", workload("w", POISON))
    reconciler.step()
    done = reconciler.cancel(store.get(run.id))  # type: ignore[arg-type]
    assert done is not None and done.state is RunState.CANCELLED
    assert "RuntimeError: scancel: bad id" in last_detail(store, run.id)
    assert "may still be running" in last_detail(store, run.id)


def test_a_cancel_that_raises_while_its_site_is_down_fails_that_run_alone(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    backends = breaking("cancel", ValueError("no such job"))
    reconciler = make_reconciler(backends=backends)
    run = store.submit("acme", workload("w", POISON))
    other = store.submit("acme", workload("w2"))
    reconciler.step()
    reconciler.step()
    backends["paris"].set_health(False, "drained")
    reconciler.step()
    assert store.get(run.id).state is RunState.FAILED  # type: ignore[union-attr]
    assert "ValueError: no such job" in last_detail(store, run.id)
    assert store.get(other.id).site == "frankfurt"  # type: ignore[union-attr]
