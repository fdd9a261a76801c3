"""The simulations view: an admin uploads a scenario and its trace, the server's worker runs
it as ``archipel simulate SCENARIO.yaml --json`` would, and the page shows the same figures.

The oracle is the command itself, run as a user runs it on the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archipel.cli._simulations import SimulationWorker, check
from archipel.console import PREFIX, Simulator
from archipel.controlplane import SimulationState, Store

from .conftest import SignIn, csrf_of

UI = PREFIX
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("data") / "scenario.yaml"
TRACE = ROOT / "examples" / "simulate" / "portfolio" / "openb-days-120-123.csv"


@pytest.fixture
def woken() -> list[int]:
    return []


@pytest.fixture
def simulator(woken: list[int]) -> Simulator:
    """The server's checks, with a worker that is only counted when woken."""
    return Simulator(check, lambda: woken.append(1), max_unfinished=2)


def upload(
    browser: TestClient, scenario: bytes, trace: bytes = b"", csrf: str | None = None
) -> Any:
    if csrf is None:
        csrf = csrf_of(browser.get(f"{UI}/simulations").text)
    files = {
        "scenario": ("scenario.yaml", scenario, "application/yaml"),
        "trace": ("openb-days-120-123.csv", trace, "text/csv"),
    }
    return browser.post(f"{UI}/simulations", data={"csrf": csrf}, files=files)


def test_an_admin_uploads_a_scenario_and_it_is_queued(
    sign_in: SignIn, store: Store, woken: list[int]
) -> None:
    admin = sign_in("acme", "admin")
    page = admin.get(f"{UI}/simulations")
    assert page.status_code == 200 and "Run a scenario" in page.text
    assert "No simulation yet" in page.text
    done = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes())
    assert done.status_code == 303, done.text
    sim_id = done.headers["location"].rsplit("/", 1)[1]
    assert woken == [1]
    sim = store.simulations.get(sim_id, "acme")
    assert sim is not None and sim.state is SimulationState.QUEUED
    assert sim.name == "half-a-day-of-openb" and sim.trace_name == "openb-days-120-123.csv"
    shown = admin.get(f"{UI}/simulations/{sim_id}")
    assert 'id="simulation-state">queued' in shown.text and "hx-trigger" in shown.text
    assert sim_id in admin.get(f"{UI}/simulations/table").text


@pytest.mark.parametrize(
    ("case", "scenario", "trace", "says"),
    [
        ("no scenario", b"", b"x", "choose a scenario file"),
        ("no trace", b"name: x", b"", "choose the trace"),
        ("not YAML", b"name: [", b"x", "not valid YAML"),
        ("not a mapping", b"- 1\n- 2\n", b"x", "give one YAML mapping"),
        ("a field missing", b"name: x\n", b"x", "trace"),
        ("not UTF-8", b"\xff\xfe", b"x", "the scenario is not UTF-8 text"),
        ("too large", b"#" * (64 * 1024 + 1), b"x", "larger than 64 KiB"),
    ],
)
def test_a_bad_upload_is_refused_with_what_to_change_and_nothing_is_queued(
    sign_in: SignIn, store: Store, case: str, scenario: bytes, trace: bytes, says: str
) -> None:
    admin = sign_in("acme", "admin")
    done = upload(admin, scenario, trace)
    assert done.status_code == 400, case
    assert says in done.text, done.text
    assert 'role="alert"' in done.text
    assert store.simulations.list("acme") == []


def test_a_trace_the_scenario_cannot_read_is_refused(sign_in: SignIn, store: Store) -> None:
    admin = sign_in("acme", "admin")
    done = upload(admin, SCENARIO.read_bytes(), b"not,an,openb,trace\n1,2,3,4\n")
    assert done.status_code == 400
    assert "/tmp" not in done.text  # the worker's folder is not shown
    assert store.simulations.list("acme") == []


def test_a_tenant_may_have_only_so_many_unfinished(sign_in: SignIn, store: Store) -> None:
    admin = sign_in("acme", "admin")
    for _ in range(2):
        assert upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes()).status_code == 303
    third = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes())
    assert third.status_code == 400 and "already queued or running" in third.text
    assert (
        upload(sign_in("globex", "admin"), SCENARIO.read_bytes(), TRACE.read_bytes()).status_code
        == 303
    )


@pytest.mark.parametrize("role", ["viewer", "submitter"])
def test_other_roles_see_the_tenants_simulations_but_may_not_run_one(
    sign_in: SignIn, store: Store, role: str
) -> None:
    sim_id = store.simulations.submit("acme", "mine", "name: mine", "t.csv", "")
    other = sign_in("acme", role)
    page = other.get(f"{UI}/simulations")
    assert page.status_code == 200 and sim_id in page.text
    assert "Run a scenario" not in page.text
    assert other.get(f"{UI}/simulations/{sim_id}").status_code == 200
    forged = upload(other, SCENARIO.read_bytes(), TRACE.read_bytes(), csrf=csrf_of(page.text))
    assert forged.status_code == 403 and "needs the admin role" in forged.text
    assert len(store.simulations.list("acme")) == 1


def test_another_tenants_simulation_is_not_found(sign_in: SignIn, store: Store) -> None:
    sim_id = store.simulations.submit("acme", "mine", "name: mine", "t.csv", "")
    other = sign_in("globex", "admin")
    assert sim_id not in other.get(f"{UI}/simulations").text
    for path in (f"{UI}/simulations/{sim_id}", f"{UI}/simulations/{sim_id}/live"):
        assert other.get(path).status_code == 404


def test_an_upload_without_the_forms_csrf_token_is_refused(sign_in: SignIn, store: Store) -> None:
    admin = sign_in("acme", "admin")
    done = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes(), csrf="forged")
    assert done.status_code == 403
    assert store.simulations.list("acme") == []


@pytest.mark.parametrize("simulator", [None])
def test_without_a_simulator_the_view_says_the_server_runs_none(
    sign_in: SignIn, store: Store, simulator: None
) -> None:
    admin = sign_in("acme", "admin")
    assert 'id="no-simulator"' in admin.get(f"{UI}/simulations").text
    done = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes())
    assert done.status_code == 404 and store.simulations.list("acme") == []


def cli_document(tmp_path: Path) -> dict[str, Any]:
    """``archipel simulate SCENARIO.yaml --json`` as a user runs it, beside its trace."""
    (tmp_path / "scenario.yaml").write_bytes(SCENARIO.read_bytes())
    (tmp_path / TRACE.name).write_bytes(TRACE.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("archipel")), "simulate", "scenario.yaml", "--json"],
        cwd=tmp_path,
        env={**env, "ARCHIPEL_DATA_DIR": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.mark.slow
def test_the_worker_runs_it_as_the_command_does_and_the_page_shows_its_figures(
    sign_in: SignIn, store: Store, tmp_path: Path
) -> None:
    admin = sign_in("acme", "admin")
    sim_id = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes()).headers["location"]
    sim_id = sim_id.rsplit("/", 1)[1]
    worker = SimulationWorker(store.simulations, None)
    assert worker.run_once() is True
    assert worker.run_once() is False  # one at a time: nothing else was queued
    sim = store.simulations.get(sim_id, "acme")
    assert sim is not None and sim.state is SimulationState.SUCCEEDED, sim
    expected = cli_document(tmp_path)
    assert sim.result == expected
    page = admin.get(f"{UI}/simulations/{sim_id}").text
    assert "hx-trigger" not in page.split('id="simulation"', 1)[1].split(">", 1)[0]
    for s in expected["strategies"]:
        assert f'data-strategy="{s["strategy"]}"' in page
        assert f'data-cost="{s["cost"]}"' in page
        assert f"{Decimal(s['cost']):,.2f} {s['currency']}" in page
        assert f"{s['done']}/{s['jobs']}" in page
    assert page.count("<svg") == 2 and "style=" not in page


def test_a_simulation_its_server_left_running_is_failed_by_the_next_worker(
    store: Store,
) -> None:
    from datetime import timedelta

    sim_id = store.simulations.submit("acme", "x", "name: x", "t.csv", "")
    assert store.simulations.claim() is not None
    worker = SimulationWorker(store.simulations, None, time_limit=timedelta(0))
    assert worker.run_once() is False
    sim = store.simulations.get(sim_id, "acme")
    assert sim is not None and sim.state is SimulationState.FAILED
    assert sim.message is not None and "stopped while it ran" in sim.message


def test_a_server_stopping_mid_simulation_stops_it_and_records_it_failed(
    sign_in: SignIn, store: Store
) -> None:
    import time

    admin = sign_in("acme", "admin")
    sim_id = upload(admin, SCENARIO.read_bytes(), TRACE.read_bytes()).headers["location"]
    sim_id = sim_id.rsplit("/", 1)[1]
    worker = SimulationWorker(store.simulations, None, poll_seconds=0.05).start()
    deadline = time.monotonic() + 30
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.busy, "the worker never started the simulation"
    worker.stop()
    sim = store.simulations.get(sim_id, "acme")
    assert sim is not None and sim.state is SimulationState.FAILED
    assert sim.message is not None and "stopped while it ran" in sim.message
