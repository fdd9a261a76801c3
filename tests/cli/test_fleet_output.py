"""The fleet plan as printed: cents that add up, no cost without a plan, and a
standard output that holds only the document asked for, whatever the solver prints."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from archipel.cli import app
from archipel.cli._output import apportion

ROOT = Path(__file__).resolve().parents[2]
ARCHIPEL = str(Path(sys.executable).with_name("archipel"))
CENT = Decimal("0.01")


@given(
    parts=st.lists(
        st.decimals(min_value=0, max_value=10**7, places=6, allow_nan=False), max_size=30
    )
)
def test_apportioned_cents_add_up_to_the_rounded_total_and_stay_within_a_cent(
    parts: list[Decimal],
) -> None:
    total = sum(parts, Decimal(0)).quantize(CENT)
    cents = apportion(parts, total)
    assert sum(cents, Decimal(0)) == total
    assert all(
        c == c.quantize(CENT) and abs(c - p) < CENT for c, p in zip(cents, parts, strict=True)
    )


def test_every_fleet_figure_adds_up_to_its_total_in_cents() -> None:
    result = CliRunner().invoke(
        app, ["fleet", "plan", str(ROOT / "examples/fleet/lab.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    usage, shortfall = Decimal(doc["usage_cost"]), Decimal(doc["shortfall_cost"])
    placements = [p for a in doc["assignments"] for p in a["placements"]]
    assert Decimal(doc["total_cost"]) == usage + shortfall
    assert sum(Decimal(p["total_cost"]) for p in placements) == usage
    assert sum(Decimal(p["usage_cost"]) for p in doc["providers"]) == usage
    assert sum(Decimal(p["shortfall_cost"]) for p in doc["providers"]) == shortfall
    assert doc["solver"]["objective"] == doc["total_cost"]
    # one amount, one figure: a provider's usage is what its placements add up to, cent for
    # cent (apportioned apart, the two tables once showed ovhcloud's 4,860.11 as 4,860.10)
    by_provider: dict[str, Decimal] = {}
    for p in placements:
        by_provider[p["provider"]] = by_provider.get(p["provider"], Decimal(0)) + Decimal(
            p["total_cost"]
        )
    assert {p["provider"]: Decimal(p["usage_cost"]) for p in doc["providers"]} == by_provider


def test_an_infeasible_fleet_with_nothing_placed_gives_no_cost(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "horizon: {start: 2026-12-01, end: 2027-01-01}\n"
        "workloads: [{name: x, kind: batch, resources: {accelerators: [H100:8]},"
        " data: {class: sovereign}}]\n"
        "commitments: [{provider: azure, amount: 1000000,"
        " period: {start: 2026-01-01, end: 2028-01-01}}]\n"
    )
    result = CliRunner().invoke(app, ["fleet", "plan", str(fleet), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["feasible"] is False and doc["assignments"] == []
    assert (doc["total_cost"], doc["usage_cost"], doc["shortfall_cost"]) == (None, None, None)
    assert doc["providers"] == []
    table = CliRunner().invoke(app, ["fleet", "plan", str(fleet)])
    assert "no plan" in table.stdout and "total" not in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "lines"),
    [
        (["plan", "--gpus", "H100:8", "--json"], 0, False),
        (["plan", str(ROOT / "examples/workloads/portfolio.yaml"), "--json"], 0, False),
        (
            ["plan", "--gpus", "H100:8", "--explain", "aws/us-east-1/p5.48xlarge", "--json"],
            0,
            False,
        ),
        (["catalog", "--gpus", "H100", "--limit", "3", "--json"], 0, True),
        (["fleet", "plan", str(ROOT / "examples/fleet/lab.yaml"), "--json"], 0, False),
        (["fleet", "plan", str(ROOT / "examples/fleet/lab.yaml"), "--json", "--timings"], 0, False),
        (
            [
                "fleet",
                "plan",
                str(ROOT / "examples/fleet/lab.yaml"),
                "--solver",
                "greedy",
                "--json",
            ],
            1,
            False,
        ),
        (
            [
                "fleet",
                "plan",
                str(ROOT / "tests/fixtures/fleet/warm-start.yaml"),
                "--json",
                "--gap",
                "0",
            ],
            0,
            False,
        ),
    ],
    ids=[
        "plan",
        "plan of a file",
        "plan --explain",
        "catalog (JSON lines)",
        "fleet plan",
        "fleet plan --timings",
        "fleet plan, greedy",
        "fleet plan, full MIP warm-started",
    ],
)
def test_json_stdout_is_only_the_document_even_from_a_fresh_process(
    args: list[str], code: int, lines: bool
) -> None:
    """A new process is the one where HiGHS prints its banner, on file descriptor 1."""
    done = subprocess.run(
        [ARCHIPEL, *args], capture_output=True, text=True, timeout=300, check=False, cwd=ROOT
    )
    assert done.returncode == code, done.stderr
    if lines:
        assert [json.loads(line) for line in done.stdout.splitlines()]
    else:
        json.loads(done.stdout)
    assert "HiGHS" not in done.stdout + done.stderr


def test_a_solver_answer_that_fails_its_check_exits_three_without_a_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from archipel.placement import _fleet_milp

    def fails(*args: object, **kw: object) -> None:
        raise _fleet_milp._UntrustedError("its columns cost 2.00 but its objective is 1.00")

    monkeypatch.setattr(_fleet_milp._Builder, "checked", fails)
    result = CliRunner().invoke(
        app, ["fleet", "plan", str(ROOT / "examples/fleet/lab.yaml"), "--json"]
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "fails its check (its columns cost 2.00 but its objective is 1.00)" in result.stderr
    assert "no plan is given" in result.stderr
