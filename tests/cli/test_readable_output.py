"""Output a newcomer reads: words instead of Python objects, counts that match the table."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archipel.cli import app
from archipel.cli._output import solver_status
from archipel.cli._render import solver_line
from archipel.placement import SolverReport

runner = CliRunner()
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "src/archipel/policy/default_policy.yaml"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_policy_show_speaks_in_words_not_python_objects() -> None:
    code, out, _ = run("policy", "show")
    assert code == 0
    for python in ["<CloudActExposure", "places=(", "allowed=[", "status="]:
        assert python not in out
    assert "  - cloud_act_exposure: CLOUD Act exposure: no\n" in out
    assert "  - site_in: the site is in the EU/EEA\n" in out
    assert (
        "  - site_in: the site is in the EU/EEA or a country with an EU adequacy decision\n" in out
    )
    assert "  - secnumcloud: the provider holds a SecNumCloud qualification\n" in out


def test_policy_check_shows_each_class_with_its_allowed_offers() -> None:
    code, out, _ = run("policy", "check", str(DEFAULT_POLICY), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["valid"] is True and doc["policy"] == "default"
    allowed = {c["name"]: c["allowed_offers"] for c in doc["data_classes"]}
    assert list(allowed) == [
        "public",
        "internal",
        "confidential",
        "personal",
        "health",
        "sovereign",
    ]
    assert allowed["public"] == doc["gpu_offers"] > 0
    # each stricter class allows no more than the one it tightens
    assert allowed["public"] >= allowed["internal"] >= allowed["confidential"] > 0
    assert allowed["internal"] >= allowed["personal"] > allowed["health"] > 0
    code, table, _ = run("policy", "check", str(DEFAULT_POLICY))
    assert code == 0 and "valid policy default, 6 data classes" in table
    assert re.search(r"health\s+│ the site is in the EU/EEA", table)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_classes: {x: {rules: [foo]}}", "data_classes.x.rules[0]: a rule is"),
        ("data_classes: {x: {rules: [{cloud_act_exposure: [maybe]}]}}", "cloud_act_exposure"),
        ("name: p\n", "data_classes"),
        ("data_classes: [", "not valid YAML"),
    ],
    ids=["unknown-rule", "bad-exposure", "no-classes", "broken-yaml"],
)
def test_policy_check_refuses_an_invalid_file_with_exit_two(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    code, out, err = run("policy", "check", str(path))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err


def test_plan_counts_placements_like_the_table_not_zones() -> None:
    # aws/us-east-1/p5.48xlarge is sold in seven zones: one row, counted once
    code, out, _ = run("plan", "--gpus", "H100:8", "--json", "--top", "1000")
    assert code == 0
    (doc,) = json.loads(out)["plans"]
    assert doc["trace"]["feasible_placements"] == len(doc["placements"])
    assert doc["trace"]["feasible_offers"] > len(doc["placements"])
    code, table, _ = run("plan", "--gpus", "H100:8", "--top", "1000")
    rows = [line for line in table.splitlines() if re.match(r"│\s+\d+ │", line)]
    assert f"{len(rows)} feasible (" in table


def test_explain_gives_one_line_for_zones_with_the_same_outcome() -> None:
    code, out, _ = run("plan", "--gpus", "H100:8", "--explain", "aws/us-east-1/p5.48xlarge")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("aws/us-east-1/p5.48xlarge")]
    assert len(lines) == 1 and "(zones use1-az1, " in lines[0].replace("use1-atl2-az1, ", "")


def test_explain_rank_is_the_rank_in_the_plan() -> None:
    code, out, _ = run("plan", "--gpus", "H100:8", "--top", "1000", "--json")
    ranks = [
        p["rank"]
        for p in json.loads(out)["plans"][0]["placements"]
        if (p["provider"], p["region"], p["instance_type"]) == ("aws", "us-east-1", "p5.48xlarge")
    ]
    code, out, _ = run(
        "plan", "--gpus", "H100:8", "--explain", "aws/us-east-1/p5.48xlarge", "--json"
    )
    assert code == 0
    assert {v["rank"] for v in json.loads(out)} == set(ranks) and len(ranks) == 1


@pytest.mark.parametrize(
    ("env", "legend"),
    [
        ({"NO_COLOR": "1", "TERM": "dumb"}, "Reasons marked * are policy"),
        ({"FORCE_COLOR": "1", "TERM": "xterm-256color"}, "Red reasons are policy"),
    ],
    ids=["no-colour", "colour"],
)
def test_policy_legend_matches_how_policy_reasons_are_marked(
    env: dict[str, str], legend: str
) -> None:
    code, out, _ = run(
        "plan", "--gpus", "H100:8", "--data-class", "health", "--countries", "FR", env=env
    )
    assert code == 0
    assert legend in re.sub(r"\x1b\[[0-9;]*m|\n", "", out)


@pytest.mark.parametrize(
    ("typed", "model"),
    [("trn1", "Trainium"), ("inf2", "Inferentia2"), ("p5", "H100"), ("MI300", "MI300X")],
    ids=["trn1", "inf2", "p5", "MI300"],
)
def test_plan_takes_instance_family_names(typed: str, model: str) -> None:
    code, out, _ = run("plan", "--gpus", f"{typed}:1", "--json")
    assert code in {0, 1}
    assert json.loads(out)["plans"][0]["request"]["accelerators"] == [f"{model}:1"]


@pytest.mark.parametrize(
    ("typed", "code", "needle"),
    [
        ("Health", 0, None),
        ("HEALTH", 0, None),
        ("helth", 2, "did you mean health?"),
    ],
    ids=["capitalised", "upper", "typo"],
)
def test_data_class_names_ignore_case_and_suggest(
    typed: str, code: int, needle: str | None
) -> None:
    got, out, err = run(
        "plan", "--gpus", "H100:8", "--data-class", typed, "--countries", "FR", "--json"
    )
    assert got == code
    if needle:
        assert needle in err
    else:
        assert json.loads(out)["plans"][0]["request"]["data_class"] == "health"


def _report(status: str, gap: float | None, solver: str = "highs") -> SolverReport:
    priced = gap is not None
    return SolverReport(
        solver=solver,
        status=status,
        objective=Decimal("1146313.52") if priced else None,
        bound=Decimal("1138031.18") if priced else None,
        gap=gap,
        variables=371,
        constraints=113,
        integer_variables=355,
        seconds=0.5,
    )


@pytest.mark.parametrize(
    ("report", "status", "line"),
    [
        (
            _report("optimal", 0.0),
            "optimal",
            "solver highs: optimal; objective 1,146,313.52, bound 1,138,031.18",
        ),
        (
            _report("optimal", 0.007225),
            "feasible",
            "solver highs: feasible, gap 0.72%; objective 1,146,313.52, bound 1,138,031.18",
        ),
        (_report("time limit", 0.05), "time limit", "solver highs: time limit; objective"),
        (_report("heuristic", None, "greedy"), "heuristic", "solver greedy: heuristic; 371"),
    ],
    ids=["zero-gap", "within-gap", "time-limit", "greedy"],
)
def test_a_fleet_is_called_optimal_only_at_a_zero_gap(
    report: SolverReport, status: str, line: str
) -> None:
    assert solver_status(report) == status
    assert solver_line(report, timings=False).startswith(line)
