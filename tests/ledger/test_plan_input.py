"""A fleet plan as a forecast input: each commitment's position if spend follows the plan.

Every expected value is worked out by hand: a plan's placements cost so much over a
horizon of so many days, hence so much a day, from ``today`` to the term's end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ledger.frames import frame

from archipel.core import AlertTolerances, InputError, parse_finops
from archipel.ledger import Burn, burn_down, commitment_alerts
from archipel.ledger._plan import parse_fleet_plan

RATES = {"USD": Decimal(1), "EUR": Decimal("1.25")}  # 1 EUR = 1.25 USD
YEAR_2026 = {"start": "2026-01-01", "end": "2027-01-01"}
ROOT = Path(__file__).resolve().parents[2]


def placement(provider: str = "aws", cost: str = "3100", **extra: Any) -> dict[str, Any]:
    doc = {"provider": provider, "region": "us-east-1", "accelerator": "H100", "total_cost": cost}
    doc.update(extra)
    return doc


def plan_doc(*placements: dict[str, Any], currency: str = "USD", days: int = 31) -> dict[str, Any]:
    """A plan over December 2026 (31 days) unless ``days`` says otherwise."""
    end = date.fromordinal(date(2026, 12, 1).toordinal() + days)
    return {
        "name": "lab",
        "feasible": True,
        "currency": currency,
        "horizon": {"start": "2026-12-01", "end": end.isoformat()},
        "assignments": [{"workload": "w", "placements": list(placements)}],
    }


def planned(
    plan: dict[str, Any], today: date, rows: tuple[dict[str, Any], ...] = (), **c: Any
) -> Burn:
    doc: dict[str, Any] = {"provider": "aws", "amount": 10_000, "period": YEAR_2026}
    doc.update(c)
    spec = parse_finops({"commitments": [doc]})
    [b] = burn_down(frame(*rows), spec, rates=RATES, today=today, plan=parse_fleet_plan(plan))
    return b


@pytest.mark.parametrize(
    ("placements", "commitment", "per_day"),
    [
        pytest.param([placement()], {}, "100", id="3,100 over 31 days: 100 a day"),
        pytest.param([placement(), placement(cost="620")], {}, "120", id="two placements add up"),
        pytest.param([placement(provider="azure")], {}, "0", id="another provider burns nothing"),
        pytest.param(
            [placement(), placement(region="eu-west-1", cost="620")],
            {"burns": {"regions": ["us-east-1"]}},
            "100",
            id="out of the region scope",
        ),
        pytest.param(
            [placement(), placement(accelerator="A100-80GB", cost="620")],
            {"burns": {"accelerators": ["a100-80gb"]}},
            "20",
            id="accelerator scope, any case",
        ),
        pytest.param(
            [placement()], {"burns": {"services": ["inference"]}}, "0", id="plans are compute"
        ),
        pytest.param([placement()], {"discount": "0.25"}, "75", id="list prices, net of discount"),
        pytest.param([placement()], {"currency": "EUR"}, "80", id="converted: 100 USD is 80 EUR"),
    ],
)
def test_the_daily_rate_of_what_burns_the_commitment(
    placements: list[dict[str, Any]], commitment: dict[str, Any], per_day: str
) -> None:
    b = planned(plan_doc(*placements), date(2026, 12, 1), **commitment)
    assert b.planned is not None
    assert b.planned.daily == Decimal(per_day)
    # from 2026-12-01 to the term's end, 2027-01-01: 31 days at that rate, nothing spent yet
    assert b.planned.at_end == Decimal(per_day) * 31


def test_the_position_adds_the_plan_to_the_spend_to_date_month_by_month() -> None:
    """Today 2026-10-15, 1,000 spent: 17 days of October left, then 30 and 31."""
    rows = ({"start": "2026-03-01T00:00:00", "cost": "1000"},)
    b = planned(plan_doc(placement()), date(2026, 10, 15), rows)
    assert b.planned is not None
    assert b.planned.months == [date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)]
    assert b.planned.position == [
        Decimal(1000 + 100 * 17),
        Decimal(1000 + 100 * 47),
        Decimal(1000 + 100 * 78),
    ]


def test_a_horizon_of_another_length_sets_the_rate() -> None:
    b = planned(plan_doc(placement(cost="700"), days=7), date(2026, 12, 1))
    assert b.planned is not None and b.planned.daily == 100


def test_exact_to_the_nano_unit() -> None:
    """1 USD over 3 days: a third a day, rounded half-even once per figure."""
    b = planned(plan_doc(placement(cost="1"), days=3), date(2026, 12, 30))
    assert b.planned is not None
    assert b.planned.daily == Decimal("0.333333333")
    assert b.planned.at_end == Decimal("0.666666667")  # two days: 2/3, not 2 x 0.333333333


def test_no_planned_position_once_the_term_is_over() -> None:
    b = planned(plan_doc(placement()), date(2027, 1, 1))
    assert b.planned is None


@pytest.mark.parametrize(
    ("per_placement", "kind"),
    [
        pytest.param("1550", "shortfall", id="50 a day: 1,550 of 10,000"),
        pytest.param("310000", "overrun", id="10,000 a day: 310,000 of 10,000"),
    ],
)
def test_a_plan_that_misses_or_overshoots_the_amount_is_an_alert(
    per_placement: str, kind: str
) -> None:
    b = planned(plan_doc(placement(cost=per_placement)), date(2026, 12, 1))
    alerts = [a for a in commitment_alerts([b], AlertTolerances()) if "as planned" in a.message]
    assert [(a.kind, a.severity) for a in alerts] == [(kind, "warning")]


def test_a_plan_on_the_amount_raises_nothing() -> None:
    """10,000 over the 31 days left: exactly the amount."""
    b = planned(plan_doc(placement(cost="10000")), date(2026, 12, 1))
    assert b.planned is not None and b.planned.at_end == 10_000
    assert not [a for a in commitment_alerts([b], AlertTolerances()) if "planned" in a.message]


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.decimals(0, 10**6, places=2), min_size=1, max_size=6),
    day=st.integers(0, 364),
)
def test_the_position_never_falls_and_ends_at_spent_plus_rate_times_days(
    costs: list[Decimal], day: int
) -> None:
    today = date.fromordinal(date(2026, 1, 1).toordinal() + day)
    b = planned(plan_doc(*(placement(cost=str(c)) for c in costs)), today)
    assert b.planned is not None
    assert b.planned.position == sorted(b.planned.position)
    days_left = (date(2027, 1, 1) - today).days
    exact = sum(costs, Decimal(0)) / 31 * days_left
    assert abs(b.planned.at_end - exact) <= Decimal("1e-9") * (1 + days_left)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        pytest.param([], "not a fleet plan", id="not an object"),
        pytest.param({**plan_doc(placement()), "feasible": False}, "infeasible", id="infeasible"),
        pytest.param(
            {k: v for k, v in plan_doc(placement()).items() if k != "horizon"},
            "no `horizon`",
            id="a plan without its horizon",
        ),
        pytest.param(
            {**plan_doc(placement()), "horizon": None},
            "plan the fleet again",
            id="an old plan, horizon null",
        ),
        pytest.param(
            {**plan_doc(placement()), "horizon": {"start": "2026-12-02", "end": "2026-12-01"}},
            "must be after start",
            id="horizon backwards",
        ),
        pytest.param(plan_doc(placement(cost="-1")), "not an amount", id="negative cost"),
        pytest.param(plan_doc(placement(cost=12)), "not an amount", id="a number, not text"),
        pytest.param(
            plan_doc({"provider": "aws", "region": "r", "accelerator": "H100"}),
            "no `total_cost`",
            id="a placement without cost",
        ),
    ],
)
def test_a_bad_plan_is_refused_with_what_to_change(doc: Any, says: str) -> None:
    with pytest.raises(InputError, match=says):
        parse_fleet_plan(doc)


def test_the_cli_reads_the_fleet_planners_own_output(tmp_path: Path) -> None:
    """`fleet plan --json` in, `ledger commitments --plan` out: the figures of the example."""
    archipel = [str(Path(sys.executable).parent / "archipel")]
    plan = subprocess.run(
        [*archipel, "fleet", "plan", str(ROOT / "examples/fleet/lab.yaml"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.stdout)
    doc = json.loads(plan.stdout)
    azure = next(p for p in doc["providers"] if p["provider"] == "azure")
    days = (
        date.fromisoformat(doc["horizon"]["end"]) - date.fromisoformat(doc["horizon"]["start"])
    ).days
    env = {"ARCHIPEL_DATA_DIR": str(tmp_path)}
    spec = tmp_path / "finops.yaml"
    spec.write_text(
        "commitments:\n- {name: az, provider: azure, amount: 1000000, currency: USD,\n"
        "   period: {start: '2026-12-01', end: '2027-12-01'}, discount: 0.2}\n"
    )
    args = ["commitments", str(spec), "--today", "2026-12-01", "--json", "--plan", str(plan_file)]
    shown = subprocess.run(
        [*archipel, "ledger", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert shown.returncode in (0, 1), shown.stderr
    [c] = json.loads(shown.stdout)["commitments"]
    # the providers' usage adds up their placements' costs to the cent (docs/fleet.md)
    per_day = Decimal(azure["usage_cost"]) * Decimal("0.8") / days
    assert abs(Decimal(c["planned"]["per_day"]) - per_day) < Decimal("0.000000001")
    assert abs(Decimal(c["planned"]["at_end"]) - per_day * 365) < Decimal("0.0000005")


def test_the_report_draws_and_lists_the_planned_position(tmp_path: Path) -> None:
    """100 a day from 2026-12-01: 3,100 by the end of the year, in the JSON and the page."""
    archipel = str(Path(sys.executable).parent / "archipel")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_doc(placement())))
    spec = tmp_path / "finops.yaml"
    spec.write_text(
        "commitments:\n- {name: c, provider: aws, amount: 10000, currency: USD,\n"
        "   period: {start: '2026-01-01', end: '2027-01-01'}}\n"
    )
    page = tmp_path / "report.html"
    env = {**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)}
    common = [archipel, "report", str(spec), "--today", "2026-12-01", "--plan", str(plan_file)]
    shown = subprocess.run([*common, "--json"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    [c] = json.loads(shown.stdout)["commitments"]
    assert c["planned"]["at_end"] == "3100"
    assert c["planned"]["per_day"] == "100"
    written = subprocess.run([*common, "-o", str(page)], capture_output=True, text=True, env=env)
    assert written.returncode == 0, written.stderr
    html = page.read_text()
    assert "as planned (lab)" in html  # the line's legend in the plot
    assert "as planned at end" in html  # the table's column


def test_a_bad_plan_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    archipel = str(Path(sys.executable).parent / "archipel")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({**plan_doc(placement()), "feasible": False}))
    spec = tmp_path / "finops.yaml"
    spec.write_text("commitments: []\n")
    env = {**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)}
    for command in (["ledger", "commitments", str(spec)], ["report", str(spec), "--json"]):
        shown = subprocess.run(
            [archipel, *command, "--plan", str(plan_file)], capture_output=True, text=True, env=env
        )
        assert shown.returncode == 2, (command, shown.stdout, shown.stderr)
        assert "the plan is infeasible" in shown.stderr
        assert "Traceback" not in shown.stderr
