"""Sweeps: a scenario's strategies under several seeds, in worker processes, summarised."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from archipel.cli._simulate import catalog_and_policy
from archipel.core import CatalogSnapshot
from archipel.policy import Policy
from archipel.sim._sweep import Spread, summarize, sweep

from .test_portfolio import CHEAP, DEAR, run, scenario, trace

JOBS = [(n * 600.0, 1800.0 + 120 * (n % 5)) for n in range(12)]
EXTRA = {
    "sites": [CHEAP, DEAR],
    "strategies": {"cheap": {"sites": ["cheap"]}, "both": {}},
    "outages": {"scaleway": {"mtbf_hours": 1, "mttr_hours": 0.25}},
    "data_classes": {"public": 0.5, "health": 0.5},
}


def test_a_sweep_in_two_processes_gives_each_seeds_own_figures(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    parsed = scenario(tmp_path, trace(tmp_path, *JOBS), **EXTRA)
    loader = functools.partial(catalog_and_policy, None)
    results = sweep(parsed, [3, 4], loader, workers=2)
    assert [(s, seed) for s, seed, _ in results] == [
        ("cheap", 3), ("cheap", 4), ("both", 3), ("both", 4)
    ]  # fmt: skip
    for strategy, seed, outcome in results:  # the same as that seed run on its own
        folder = tmp_path / f"{strategy}-{seed}"
        folder.mkdir()
        alone = run(folder, snapshot, policy, *JOBS, **{**EXTRA, "seed": seed,
                    "strategies": {strategy: EXTRA["strategies"][strategy]}})  # fmt: skip
        assert outcome == alone


def test_the_summary_is_each_figures_mean_and_range(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    parsed = scenario(tmp_path, trace(tmp_path, *JOBS), **EXTRA)
    results = sweep(parsed, [1, 2, 3], functools.partial(catalog_and_policy, None))
    [cheap, both] = summarize(results)
    costs = [float(o.cost) for s, _, o in results if s == "both"]
    assert both.cost == Spread(sum(costs) / 3, min(costs), max(costs))
    assert (cheap.strategy, cheap.seeds, both.seeds) == ("cheap", 3, 3)
    assert cheap.violations == both.violations == 0


def test_the_cli_sweeps_with_seeds(tmp_path: Path) -> None:
    jobs = trace(tmp_path, (0, 3600), (600, 3600))
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": "sw", "seed": 5, "trace": {"openb": jobs.name},
                                "sites": [CHEAP], "strategies": {"one": {}}, "drain_hours": 5}))  # fmt: skip
    archipel = str(Path(sys.executable).parent / "archipel")
    shown = subprocess.run(
        [archipel, "simulate", str(spec), "--seeds", "2", "--workers", "1", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)},
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["seeds"] == [5, 6]
    assert [(r["strategy"], r["seed"]) for r in doc["runs"]] == [("one", 5), ("one", 6)]
    [one] = doc["summary"]
    assert one["cost"] == {"mean": 7.2, "low": 7.2, "high": 7.2}  # 2 GPU-hours at 3.60
    from archipel.sim._report import render_scenario_html

    html = render_scenario_html(doc)
    assert "seeds 5 to 6 (means, and ranges)" in html and html.count("<svg") == 2
