"""The reconciler on fake backends: lifecycle, recovery, no loss, no duplicates.

Runs against SQLite and PostgreSQL alike (the ``store`` fixture)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from archipel.backends import AttemptState, FakeBackend, LaunchResult
from archipel.controlplane import NewAttempt, Reconciler, Store
from archipel.core import RunState, parse_workload

from .conftest import SITES, HostedFake, MakeReconciler


def workload(name: str = "train", cls: str = "personal", **extra: Any) -> Any:
    return parse_workload(
        {
            "name": name,
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": cls},
            "run": {"command": ["python", "train.py"], **extra},
        }
    )


def states(store: Store, run_id: str) -> list[str]:
    return [e.to_state for e in store.events(run_id)]


def test_a_run_is_placed_on_the_cheapest_allowed_site_and_succeeds(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload(cls="personal"))  # personal: not the US site
    reconciler.step()
    run2 = store.get(run.id)
    assert run2 is not None and run2.state is RunState.LAUNCHING and run2.site == "paris"
    reconciler.step()
    assert store.get(run.id).state is RunState.RUNNING  # type: ignore[union-attr]
    fakes["paris"].finish(f"{run.id}-a1", 0)
    reconciler.step()
    assert states(store, run.id) == ["pending", "placing", "launching", "running", "succeeded"]


def test_public_work_goes_to_the_cheapest_site_even_outside_the_eu(
    store: Store, reconciler: Reconciler
) -> None:
    run = store.submit("acme", workload(cls="public"))
    reconciler.step()
    assert store.get(run.id).site == "virginia"  # type: ignore[union-attr]


def test_a_failed_attempt_resumes_elsewhere_with_restart_count_and_checkpoint(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    reconciler.step()
    reconciler.step()
    fakes["paris"].finish(f"{run.id}-a1", 1)
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None
    assert moved.site == "frankfurt" and moved.restarts == 1
    assert moved.blocked_sites == ("paris",)
    job = fakes["frankfurt"]._jobs[f"{run.id}-a2"]
    assert job.request.env["ARCHIPEL_RESTART_COUNT"] == "1"
    assert job.request.env["ARCHIPEL_PYTHON"] == sys.executable
    assert job.request.env["ARCHIPEL_CHECKPOINT_DIR"].endswith(run.id)
    # a site that runs attempts as another user must let it write its checkpoint
    assert list(job.request.writable) == [job.request.env["ARCHIPEL_CHECKPOINT_DIR"]]
    history = states(store, run.id)
    assert history[-3:] == ["recovering", "placing", "launching"]


def test_a_site_that_goes_down_moves_its_runs(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    reconciler.step()
    reconciler.step()
    fakes["paris"].set_health(False, "partition drained")
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt"
    assert fakes["paris"].observe([f"{run.id}-a1"])[f"{run.id}-a1"].state.value == "cancelled"
    assert any("partition drained" in (e.detail or "") for e in store.events(run.id))


def test_an_attempt_its_healthy_site_cannot_observe_keeps_running_there(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    # a failed squeue says nothing about the job: launching it elsewhere would run it twice
    run = store.submit("acme", workload())
    reconciler.step()
    reconciler.step()
    fakes["paris"].observe_failure = "cannot query Slurm: slurm_load_jobs error: timeout"
    for _ in range(3):
        reconciler.step()
    kept = store.get(run.id)
    assert kept is not None and kept.state is RunState.RUNNING and kept.site == "paris"
    assert fakes["frankfurt"].launches == 0 and fakes["virginia"].launches == 0
    fakes["paris"].observe_failure = None
    fakes["paris"].finish(f"{run.id}-a1", 0)
    reconciler.step()
    assert states(store, run.id)[-2:] == ["running", "succeeded"]


def test_an_attempt_on_a_site_that_is_down_and_cannot_be_observed_moves(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    reconciler.step()
    reconciler.step()
    fakes["paris"].observe_failure = "cannot query Slurm: unable to contact slurm controller"
    fakes["paris"].set_health(False, "cannot query Slurm: unable to contact slurm controller")
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt"
    assert any("went down" in (e.detail or "") for e in store.events(run.id))


def test_preemption_is_recovered_until_the_budget_is_spent(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload(max_restarts=1))
    reconciler.step()
    fakes["paris"].preempt(f"{run.id}-a1")
    reconciler.step()
    assert store.get(run.id).site == "frankfurt"  # type: ignore[union-attr]
    fakes["frankfurt"].preempt(f"{run.id}-a2")
    reconciler.step()
    final = store.get(run.id)
    assert final is not None and final.state is RunState.FAILED
    assert "restart budget spent" in store.events(run.id)[-1].detail  # type: ignore[operator]


def test_a_run_that_lost_an_attempt_on_every_site_it_may_use_tries_them_again(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    """Personal data: paris and frankfurt only. Preempted on both, the run does not fail
    while it has restarts left: it starts over on the cheaper one, nothing blocked."""
    run = store.submit("acme", workload(max_restarts=5))
    reconciler.step()
    fakes["paris"].preempt(f"{run.id}-a1")
    reconciler.step()
    fakes["frankfurt"].preempt(f"{run.id}-a2")
    reconciler.step()
    again = store.get(run.id)
    assert again is not None
    assert (again.state, again.site, again.restarts) == (RunState.LAUNCHING, "paris", 2)
    assert again.blocked_sites == ()
    assert fakes["paris"].observe([f"{run.id}-a3"])[f"{run.id}-a3"].state is AttemptState.RUNNING


def test_a_run_whose_every_site_lost_it_and_is_down_waits_for_one_to_come_back(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload(max_restarts=5))
    reconciler.step()
    fakes["paris"].preempt(f"{run.id}-a1")
    reconciler.step()
    fakes["paris"].set_health(False, "outage")
    fakes["frankfurt"].preempt(f"{run.id}-a2")
    fakes["frankfurt"].set_health(False, "outage")
    reconciler.step()
    waiting = store.get(run.id)
    assert waiting is not None and waiting.state is RunState.PENDING
    assert "down" in (waiting.message or "") and waiting.blocked_sites == ()
    fakes["frankfurt"].set_health(True)
    reconciler.step()
    back = store.get(run.id)
    assert back is not None and (back.state, back.site) == (RunState.LAUNCHING, "frankfurt")


def test_work_that_no_site_may_hold_fails_with_the_reason(
    store: Store, reconciler: Reconciler
) -> None:
    run = store.submit("acme", workload(cls="sovereign"))
    reconciler.step()
    final = store.get(run.id)
    assert final is not None and final.state is RunState.FAILED
    assert "SecNumCloud" in (store.events(run.id)[-1].detail or "")


def test_full_sites_make_runs_wait_without_filling_the_history(
    store: Store, reconciler: Reconciler
) -> None:
    runs = [store.submit("acme", workload(f"w{i}")) for i in range(6)]  # 4 EU slots
    for _ in range(3):
        reconciler.step()
    placed = [store.get(r.id) for r in runs]
    assert sum(1 for r in placed if r and r.state.active) == 4
    waiting = [r for r in placed if r and r.state is RunState.PENDING]
    assert len(waiting) == 2
    assert "full" in (waiting[0].message or "")
    assert len(store.events(waiting[0].id)) <= 4


def test_a_retryable_launch_failure_blocks_the_site_and_goes_on_in_the_same_round(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    fakes["paris"].launch_failures.append(LaunchResult("x", False, error="quota", retryable=True))
    run = store.submit("acme", workload())
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and (moved.site, moved.state) == ("frankfurt", RunState.LAUNCHING)
    assert moved.blocked_sites == ("paris",) and moved.restarts == 1
    assert fakes["frankfurt"].launches == 1


def test_launches_refused_everywhere_stop_at_one_try_per_site_in_a_round(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    """paris and frankfurt (the sites personal data may use) both refuse, again and again:
    one round tries each once, then leaves the run for the next round."""
    for name in ("paris", "frankfurt"):
        fakes[name].launch_failures += [
            LaunchResult("x", False, error="quota", retryable=True) for _ in range(10)
        ]
    run = store.submit("acme", workload(max_restarts=10))
    report = reconciler.step()
    assert report.launched == 0
    tried = [a.site for a in store.attempts(run.id)]
    assert sorted(tried) == ["frankfurt", "paris"]
    after = store.get(run.id)
    assert after is not None and after.state is not RunState.FAILED


def test_a_restarted_control_plane_adopts_and_never_launches_twice(
    store: Store, fakes: dict[str, FakeBackend], make_reconciler: MakeReconciler
) -> None:
    first = make_reconciler()
    runs = [store.submit("acme", workload(f"w{i}")) for i in range(3)]
    first.step()
    # the process dies; a new one starts on the same store and backends
    second = make_reconciler()
    for _ in range(3):
        second.step()
    assert sum(f.launches for f in fakes.values()) == 3
    assert all(store.get(r.id).state is RunState.RUNNING for r in runs)  # type: ignore[union-attr]


def test_a_crash_between_recording_and_launching_is_healed_by_relaunching(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    placing = store.transition(store.get(run.id), RunState.PLACING)  # type: ignore[arg-type]
    assert placing is not None
    # recorded as launching on paris, but the process died before calling the backend
    store.transition(
        placing, RunState.LAUNCHING, "placed", attempt=NewAttempt(f"{run.id}-a1", 1, "paris")
    )
    reconciler.step()
    assert fakes["paris"].launches == 1
    reconciler.step()
    assert store.get(run.id).state is RunState.RUNNING  # type: ignore[union-attr]


def test_two_reconcilers_on_one_store_do_not_both_move_a_run(
    store: Store, fakes: dict[str, FakeBackend], make_reconciler: MakeReconciler
) -> None:
    a, b = make_reconciler(), make_reconciler()
    run = store.submit("acme", workload())
    stale = store.get(run.id)
    a.step()
    assert stale is not None
    assert store.transition(stale, RunState.PLACING) is None  # b's view is stale: refused
    b.step()
    assert sum(f.launches for f in fakes.values()) == 1
    assert [a.id for a in store.attempts(run.id)] == [f"{run.id}-a1"]


def test_cancel_stops_the_attempt_and_the_run(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    reconciler.step()
    reconciler.cancel(store.get(run.id))  # type: ignore[arg-type]
    assert store.get(run.id).state is RunState.CANCELLED  # type: ignore[union-attr]
    assert fakes["paris"].observe([f"{run.id}-a1"])[f"{run.id}-a1"].state.value == "cancelled"


def test_two_reconcilers_racing_in_threads_launch_every_run_exactly_once(
    store: Store, fakes: dict[str, FakeBackend], make_reconciler: MakeReconciler
) -> None:
    """Two control-plane replicas on one database: no run is launched twice."""
    import threading

    big = [s.model_copy(update={"slots": 100}) for s in SITES]
    runs = [store.submit("acme", workload(f"w{i}", cls="public")) for i in range(30)]
    replicas = [make_reconciler(big) for _ in range(2)]
    errors: list[BaseException] = []

    def drive(r: Reconciler) -> None:
        try:
            for _ in range(4):
                r.step()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(f.launches for f in fakes.values()) == len(runs)
    for run in runs:
        assert [a.number for a in store.attempts(run.id)] == [1]


def service(name: str = "svc", **serve: Any) -> Any:
    return parse_workload(
        {
            "name": name,
            "kind": "inference",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "personal"},
            "run": {"command": ["python", "-m", "server"]},
            "serve": {"model": "llama-3.1-8b", **serve},
        }
    )


def with_ports(make_reconciler: MakeReconciler, ports: Sequence[int]) -> Reconciler:
    """A reconciler whose port picker hands out ``ports`` in order."""
    given = iter(ports)
    return make_reconciler(pick_port=lambda: next(given))


@pytest.mark.parametrize(
    ("serve", "port"),
    [
        pytest.param({}, 41000, id="picked for the attempt"),
        pytest.param({"port": 8000}, 8000, id="fixed by serve.port"),
    ],
)
def test_a_service_is_told_its_port_and_its_attempt_records_it(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    serve: dict[str, Any],
    port: int,
) -> None:
    reconciler = with_ports(make_reconciler, [41000])
    run = store.submit("acme", service(**serve))
    reconciler.step()
    env = fakes["paris"]._jobs[f"{run.id}-a1"].request.env
    assert (env["ARCHIPEL_PORT"], env["PORT"]) == (str(port), str(port))
    assert [a.port for a in store.attempts(run.id)] == [port]


def test_a_job_that_serves_nothing_gets_no_port(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", workload())
    reconciler.step()
    assert "ARCHIPEL_PORT" not in fakes["paris"]._jobs[f"{run.id}-a1"].request.env
    assert [a.port for a in store.attempts(run.id)] == [None]


def test_each_attempt_of_a_service_gets_a_port_of_its_own(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
) -> None:
    reconciler = with_ports(make_reconciler, [41000, 41001])
    run = store.submit("acme", service())
    reconciler.step()
    fakes["paris"].finish(f"{run.id}-a1", 1)
    reconciler.step()
    assert fakes["frankfurt"]._jobs[f"{run.id}-a2"].request.env["PORT"] == "41001"
    assert [a.port for a in store.attempts(run.id)] == [41000, 41001]


def test_a_port_handed_out_lately_is_not_handed_out_again(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
) -> None:
    """The first service may not listen yet, so its port still looks free."""
    reconciler = with_ports(make_reconciler, [41000, 41000, 41002])
    runs = [store.submit("acme", service(f"svc{i}")) for i in range(2)]
    reconciler.step()
    assert [store.attempts(r.id)[0].port for r in runs] == [41000, 41002]


def test_a_relaunch_after_a_crash_uses_the_recorded_port(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run = store.submit("acme", service())
    placing = store.transition(store.get(run.id), RunState.PLACING)  # type: ignore[arg-type]
    assert placing is not None
    store.transition(
        placing,
        RunState.LAUNCHING,
        "placed",
        attempt=NewAttempt(f"{run.id}-a1", 1, "paris"),
        port=41234,
    )
    reconciler.step()  # the process died before calling the backend: launched now
    assert fakes["paris"]._jobs[f"{run.id}-a1"].request.env["ARCHIPEL_PORT"] == "41234"


def test_the_host_a_backend_observes_is_recorded_with_the_attempt(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    hosts = itertools.chain([None, "node1"], itertools.repeat("node2"))
    paris = HostedFake("paris", lambda: next(hosts))
    backends = {s.name: paris if s.name == "paris" else FakeBackend(s.name) for s in SITES}
    reconciler = make_reconciler(backends=backends)
    run = store.submit("acme", service())
    reconciler.step()
    reconciler.step()  # observed running, host not known yet
    assert store.attempts(run.id)[0].host is None
    reconciler.step()
    assert store.attempts(run.id)[0].host == "node1"
    reconciler.step()  # a host that changes is recorded again
    assert store.attempts(run.id)[0].host == "node2"


# -- groups: the replicas of one service, spread over providers ---------------------


def group(cls: str = "personal", replicas: int = 2, **spread: Any) -> Any:
    return parse_workload(
        {
            "name": "svc",
            "kind": "inference",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": cls},
            "run": {"command": ["python", "-m", "server"]},
            "replicas": replicas,
            **({"spread": spread} if spread else {}),
        }
    )


def providers(store: Store, runs: Sequence[Any]) -> list[str | None]:
    by_site = {s.name: s.provider for s in SITES}
    return [by_site.get(store.get(r.id).site or "") for r in runs]  # type: ignore[union-attr]


def roomy(make_reconciler: MakeReconciler) -> Reconciler:
    """The test sites with room for ten attempts each: only the spread rule limits a group."""
    return make_reconciler([s.model_copy(update={"slots": 10}) for s in SITES])


def test_a_group_of_two_with_min_providers_two_lands_on_two_providers(
    store: Store, reconciler: Reconciler
) -> None:
    runs = store.submit_group("acme", group(min_providers=2))
    reconciler.step()
    assert [r.name for r in runs] == ["svc-1", "svc-2"]
    assert providers(store, runs) == ["scaleway", "ionos"]  # personal: the two EU sites


@pytest.mark.parametrize(
    ("replicas", "spread", "where"),
    [
        pytest.param(4, {}, ["aws"] * 4, id="no spread: all on the cheapest"),
        pytest.param(
            4,
            {"max_share_per_provider": 0.5},
            ["aws", "aws", "scaleway", "scaleway"],
            id="share cap: two of four per provider",
        ),
        pytest.param(
            3,
            {"max_share_per_provider": 0.4},
            ["aws", "scaleway", "ionos"],
            id="share cap rounds down: one of three each",
        ),
        pytest.param(
            4,
            {"min_providers": 3},
            ["aws", "aws", "scaleway", "ionos"],
            id="min providers: new ones only when the rest are needed for them",
        ),
        pytest.param(
            2, {"min_countries": 2}, ["aws", "scaleway"], id="min countries: another country"
        ),
    ],
)
def test_the_spread_rule_decides_where_the_replicas_go(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    replicas: int,
    spread: dict[str, Any],
    where: list[str],
) -> None:
    reconciler = roomy(make_reconciler)
    runs = store.submit_group("acme", group("public", replicas, **spread))
    reconciler.step()
    assert providers(store, runs) == where


def ionos_only(name: str) -> Any:
    return parse_workload(
        {
            "name": name,
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "constraints": {"providers": ["ionos"]},
            "run": {"command": ["python", "train.py"]},
        }
    )


def test_a_replica_that_cannot_keep_the_spread_waits_then_goes_where_a_slot_frees_up(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    fillers = [store.submit("acme", ionos_only(f"fill{i}")) for i in range(2)]
    reconciler.step()  # frankfurt (ionos) is full
    first, second = store.submit_group("acme", group(min_providers=2))
    reconciler.step()
    reconciler.step()
    assert providers(store, [first]) == ["scaleway"]  # paris has a free slot ...
    waiting = store.get(second.id)
    assert waiting is not None and waiting.state is RunState.PENDING  # ... but not for this one
    assert "frankfurt full" in (waiting.message or "")
    assert "paris kept off by spread.min_providers (2)" in (waiting.message or "")
    fakes["frankfurt"].finish(f"{fillers[0].id}-a1", 0)
    reconciler.step()
    assert providers(store, [second]) == ["ionos"]


def test_a_failed_replica_is_recovered_onto_a_provider_that_keeps_the_spread(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    first, second = store.submit_group("acme", group("public", min_providers=2))
    reconciler.step()
    assert providers(store, [first, second]) == ["aws", "scaleway"]
    fakes["paris"].finish(f"{second.id}-a1", 1)
    reconciler.step()  # virginia is the cheapest left, but aws already holds the other
    recovered = store.get(second.id)
    assert recovered is not None and recovered.state is RunState.LAUNCHING
    assert (recovered.site, recovered.blocked_sites, recovered.restarts) == (
        "frankfurt",
        ("paris",),
        1,
    )


def test_a_finished_replica_no_longer_holds_its_provider(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    first, second = store.submit_group("acme", group("public", min_providers=2))
    reconciler.step()
    reconciler.cancel(store.get(first.id))  # type: ignore[arg-type]
    fakes["paris"].finish(f"{second.id}-a1", 1)
    reconciler.step()
    assert providers(store, [second]) == ["aws"]  # virginia, the cheapest, is free to it again


def test_every_recorded_attempt_state_is_an_attempt_state(
    store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    """Recorded before the launch, accepted by the backend, then as observed: each a member."""
    run = store.submit("acme", workload())
    seen = []
    placing = store.transition(store.get(run.id), RunState.PLACING)  # type: ignore[arg-type]
    assert placing is not None
    store.transition(
        placing, RunState.LAUNCHING, "placed", attempt=NewAttempt(f"{run.id}-a1", 1, "paris")
    )
    seen.append(store.attempts(run.id)[0].state)
    reconciler.step()  # launched: accepted by the backend, not seen running yet
    seen.append(store.attempts(run.id)[0].state)
    reconciler.step()
    seen.append(store.attempts(run.id)[0].state)
    assert seen == [AttemptState.LAUNCHING, AttemptState.PENDING, AttemptState.RUNNING]
    assert [a.number for a in store.attempts(run.id)] == [1]


def test_the_attempt_number_is_recorded_as_given_not_read_from_its_id(store: Store) -> None:
    run = store.submit("acme", workload())
    placing = store.transition(store.get(run.id), RunState.PLACING)  # type: ignore[arg-type]
    assert placing is not None
    store.transition(
        placing, RunState.LAUNCHING, "placed", attempt=NewAttempt("custom-id", 3, "paris")
    )
    assert [(a.id, a.number) for a in store.attempts(run.id)] == [("custom-id", 3)]
