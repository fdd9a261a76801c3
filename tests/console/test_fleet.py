"""The fleet upload on the plan page: ``archipel fleet plan FILE.yaml`` from a browser.

The oracle is the command itself on the same file, run as a user runs it
(``archipel fleet plan examples/fleet/lab.yaml --json``): the page must show the same
totals, the same assignments and the same providers' figures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from archipel.cli._server import _fleet_planner
from archipel.console import PREFIX, FleetPlanner
from archipel.console._render import money
from archipel.placement import Planner

from .conftest import SignIn, csrf_of

UI = PREFIX
ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "examples" / "fleet" / "lab.yaml"


@pytest.fixture
def fleet(plans: Callable[[], Planner]) -> FleetPlanner:
    """The fleet upload as ``archipel server`` composes it."""
    return _fleet_planner(plans)


@pytest.fixture(scope="module")
def lab_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("fleet-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("archipel")), "fleet", "plan", str(LAB), "--json"],
        env={**env, "ARCHIPEL_DATA_DIR": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def upload(browser: Any, text: bytes, csrf: str | None = None) -> Any:
    if csrf is None:
        csrf = csrf_of(browser.get(f"{UI}/plan/fleet").text)
    files = {"fleet": ("lab.yaml", text, "application/yaml")}
    return browser.post(f"{UI}/plan/fleet", data={"csrf": csrf}, files=files)


def cell(html: str, marker: str) -> str:
    found = re.search(rf"{re.escape(marker)}>([^<]*)<", html)
    assert found is not None, marker
    return found.group(1)


def test_the_plan_page_links_to_the_fleet_form(sign_in: SignIn) -> None:
    page = sign_in("acme", "viewer").get(f"{UI}/plan").text
    assert f'href="{UI}/plan/fleet"' in page


def test_the_lab_fleet_has_the_commands_totals_assignments_and_providers(
    sign_in: SignIn, fleet: FleetPlanner, lab_document: dict[str, Any]
) -> None:
    done = upload(sign_in("acme", "viewer"), LAB.read_bytes())
    assert done.status_code == 200, done.text
    page = done.text
    cur = lab_document["currency"]
    assert cell(page, 'id="fleet-verdict" class="state state-succeeded"') == "feasible"
    for total in ("total_cost", "usage_cost", "shortfall_cost"):
        shown = cell(page, f'data-total="{total}"')
        assert shown == f"{money(Decimal(lab_document[total]))} {cur}", total
    for a in lab_document["assignments"]:
        rows = page.count(f'<tr data-workload="{a["workload"]}">')
        assert rows == len(a["placements"]), a["workload"]
        for p in a["placements"]:
            assert money(Decimal(p["total_cost"])) in page
    for p in lab_document["providers"]:
        assert f'<tr data-provider="{p["provider"]}">' in page
        assert money(Decimal(p["usage_cost"])) in page
        assert f"{p['spend_share'] * 100:.1f}%" in page


def test_an_infeasible_fleet_says_which_rules_conflict(
    sign_in: SignIn, fleet: FleetPlanner
) -> None:
    text = LAB.read_text().replace(
        "max_share: 0.45, measure: spend", "max_share: 0.05, measure: spend"
    )
    done = upload(sign_in("acme", "admin"), text.encode())
    assert done.status_code == 200, done.text
    assert cell(done.text, 'id="fleet-verdict" class="state state-failed"') == "infeasible"
    assert "Why it is infeasible" in done.text
    assert 'data-family="concentration"' in done.text


@pytest.mark.parametrize(
    ("case", "text", "says"),
    [
        ("empty", b"", "choose a fleet file"),
        ("not YAML", b"name: [", "not valid YAML"),
        ("no workloads", b"name: x\n", "workloads"),
        (
            "another file",
            b"name: x\nworkloads:\n- {file: /etc/passwd}\n",
            "write each workload inline",
        ),
        ("private offers", b"name: x\noffers: [a.yaml]\nworkloads: []\n", "private offers"),
        ("not UTF-8", b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_fleet_file_is_refused_with_what_to_change(
    sign_in: SignIn, fleet: FleetPlanner, case: str, text: bytes, says: str
) -> None:
    done = upload(sign_in("acme", "viewer"), text)
    assert done.status_code == 400, case
    assert says in done.text, done.text
    assert "archipel-fleet-" not in done.text  # the server's temporary folder is not shown


def test_a_fleet_post_without_the_forms_csrf_token_is_refused(
    sign_in: SignIn, fleet: FleetPlanner
) -> None:
    assert upload(sign_in("acme", "viewer"), LAB.read_bytes(), csrf="forged").status_code == 403


@pytest.mark.parametrize("fleet", [None])
def test_without_a_fleet_planner_there_is_no_fleet_form(sign_in: SignIn, fleet: None) -> None:
    browser = sign_in("acme", "viewer")
    assert "plan/fleet" not in browser.get(f"{UI}/plan").text
    assert browser.get(f"{UI}/plan/fleet").status_code == 404
