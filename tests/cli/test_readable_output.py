"""Output a newcomer reads: words instead of Python objects, counts that match the table."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from archipel.catalog import load_snapshot
from archipel.cli import app
from archipel.cli._output import solver_status
from archipel.cli._render import render_explain, solver_line
from archipel.placement import OfferVerdict, PluginScore, ScoreBreakdown, SolverReport

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


def test_explain_gives_the_score_breakdown_of_the_offer_and_of_the_winner() -> None:
    key = "aws/us-east-1/p5.48xlarge"
    code, out, _ = run("plan", "--gpus", "H100:8", "--explain", key, "--json")
    assert code == 0
    verdict = json.loads(out)[0]
    # price is the only score: 100 x the winner's total / this offer's, from the exact totals
    ratio = Decimal(verdict["winner_total"]) / Decimal(verdict["comparison_total"]) * 100
    price = float(round(ratio, 3))
    assert verdict["score"] == {
        "total": price,
        "plugins": [{"plugin": "price", "score": price, "weight": 1}],
    }
    assert verdict["winner_score"] == {
        "total": 100.0,
        "plugins": [{"plugin": "price", "score": 100.0, "weight": 1}],
    }
    code, text, _ = run("plan", "--gpus", "H100:8", "--explain", key)
    assert f"  score {price:g} of 100: price {price:g} (weight 1)\n" in text
    assert "  the winner's score 100 of 100: price 100 (weight 1)\n" in text


def _verdict(rank: int, total: str, best: str, *parts: tuple[str, float, int]) -> OfferVerdict:
    """A feasible verdict on a shipped offer, scored by hand: the total is the weighted mean."""
    weights = sum(w for _, _, w in parts)
    breakdown = ScoreBreakdown(
        sum(s * w for _, s, w in parts) / weights, tuple(PluginScore(*p) for p in parts)
    )
    winner = ScoreBreakdown(
        90.0, (PluginScore("price", 80.0, 1), PluginScore("commitment", 100.0, 1))
    )
    return OfferVerdict(
        offer=load_snapshot().offers.offer(0),
        rejections=(),
        rank=rank,
        total_cost=Decimal(total),
        best_total=Decimal(best),
        comparison_total=Decimal(total),
        scores=breakdown,
        winner_scores=winner,
    )


STANDINGS = [
    # name, verdict, what its first line says after the offer's name, its score line
    ("price alone, first: the cheapest",
     _verdict(1, "12", "12", ("price", 100.0, 1)),
     ": feasible and the cheapest (12.00 USD).", "score 100 of 100: price 100 (weight 1)"),
    ("price alone, tied on price: the cheapest too",
     _verdict(2, "12", "12", ("price", 100.0, 1)),
     ": feasible and the cheapest (12.00 USD).", "score 100 of 100: price 100 (weight 1)"),
    ("price alone, second: how much more",
     _verdict(2, "15", "12", ("price", 80.0, 1)),
     ": feasible, ranks #2: costs 15.00 USD, 3.00 USD more than the winner.",
     "score 80 of 100: price 80 (weight 1)"),
    ("with a commitment, first: not said to be the cheapest",
     _verdict(1, "15", "15", ("price", 80.0, 1), ("commitment", 100.0, 1)),
     ": feasible and ranks first: costs 15.00 USD.",
     "score 90 of 100: price 80 (weight 1), commitment 100 (weight 1)"),
    ("with a commitment, second and cheaper: how much less",
     _verdict(2, "12", "15", ("price", 100.0, 3), ("commitment", 0.0, 1)),
     ": feasible, ranks #2: costs 12.00 USD, 3.00 USD less than the winner.",
     "score 75 of 100: price 100 (weight 3), commitment 0 (weight 1)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "verdict", "standing", "score"), STANDINGS, ids=[c[0] for c in STANDINGS]
)
def test_explain_says_where_a_feasible_offer_stands(
    name: str, verdict: OfferVerdict, standing: str, score: str
) -> None:
    out = io.StringIO()
    render_explain(Console(file=out, width=300, color_system=None), [verdict], "USD")
    lines = out.getvalue().splitlines()
    assert (
        lines[0]
        == verdict.offer.key + f" (zone {verdict.offer.zone})" * bool(verdict.offer.zone) + standing
    )
    assert lines[1] == f"  {score}"
    winner = "  the winner's score 90 of 100: price 80 (weight 1), commitment 100 (weight 1)"
    assert lines[2:] == ([] if verdict.rank == 1 else [winner])


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
