"""Study 3's simulation: the real control plane on simulated sites, under outages.

Each expected figure is worked out by hand from a trace of a few jobs written in the
test: when each job arrives, how long it runs, where the engine must put it, what an
outage takes back to the last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from archipel.controlplane import SiteSpec
from archipel.core import CatalogSnapshot, InputError
from archipel.policy import Policy
from archipel.sim._openb import load_openb
from archipel.sim._portfolio import (
    Outcome,
    ScenarioSpec,
    draw_outages,
    parse_scenario,
    run_strategy,
    up_share,
    violation,
)

HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
ROOT = Path(__file__).resolve().parents[2]

CHEAP = {"name": "cheap", "provider": "scaleway", "region": "fr-par", "country": "FR",
         "accelerators": "H100:1", "slots": 2, "price_per_hour": "3.60"}  # fmt: skip
DEAR = {"name": "dear", "provider": "ionos", "region": "de/fra", "country": "DE",
        "accelerators": "H100:1", "slots": 2, "price_per_hour": "7.20"}  # fmt: skip
US = {"name": "us", "provider": "aws", "region": "us-east-1", "country": "US",
      "accelerators": "H100:1", "slots": 4, "price_per_hour": "1.00"}  # fmt: skip


def trace(folder: Path, *jobs: tuple[float, float], gpus: int = 1) -> Path:
    """A trace of jobs ``(arrival s, work s)``, one GPU each (times from day 0)."""
    path = folder / "trace.csv"
    rows = [
        f"pod-{n:03d},1000,1024,{gpus},1000,,BE,Succeeded,{a:.0f},{a + w:.0f},{a:.0f}\n"
        for n, (a, w) in enumerate(jobs)
    ]
    path.write_text(HEADER + "".join(rows))
    return path


def scenario(folder: Path, jobs: Path, **extra: Any) -> Any:
    doc: dict[str, Any] = {
        "name": "t",
        "trace": {"openb": str(jobs), "first_day": 0, "days": 1},
        "sites": [CHEAP, DEAR],
        "strategies": {"all": {}},
        "checkpoint_minutes": 30,
        "round_seconds": 60,
        "drain_hours": 24,
    }
    doc.update(extra)
    return parse_scenario(doc, "scenario.yaml", folder, load_openb)


def run(
    tmp_path: Path,
    snapshot: CatalogSnapshot,
    policy: Policy,
    *jobs: tuple[float, float],
    **extra: Any,
) -> Outcome:
    parsed = scenario(tmp_path, trace(tmp_path, *jobs), **extra)
    store = tmp_path / "run"
    store.mkdir()
    name = next(iter(parsed.spec.strategies))
    return run_strategy(parsed, name, snapshot, policy, store)


def test_jobs_fill_the_cheapest_site_then_wait_for_a_slot(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """Three jobs of an hour at 0 on a two-slot site: the third waits an hour for a slot."""
    out = run(tmp_path, snapshot, policy, (0, 3600), (0, 3600), (0, 3600),
              sites=[CHEAP], strategies={"all": {}})  # fmt: skip
    assert (out.jobs, out.done, out.refused, out.failed, out.unfinished) == (3, 3, 0, 0, 0)
    assert out.cost == Decimal("10.80")  # 3 GPU-hours at 3.60 (FR site, priced in USD)
    assert out.gpu_hours == out.done_gpu_hours == Decimal("3.00")
    assert (out.wait_p50_s, out.wait_p95_s) == (0, 3600)
    assert out.violations == () and out.outages == 0


def test_the_engine_picks_the_cheaper_site_and_spills_to_the_dearer_one(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """Three jobs at once, two slots at 3.60 and two at 7.20: one job spills over."""
    out = run(tmp_path, snapshot, policy, (0, 3600), (0, 3600), (0, 3600))
    assert out.cost == Decimal("14.40")  # 2 x 3.60 + 1 x 7.20
    assert out.spend_share == {"ionos": Decimal("0.5000"), "scaleway": Decimal("0.5000")}
    assert out.wait_p95_s == 0


def test_health_data_is_refused_where_no_site_may_hold_it(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    out = run(tmp_path, snapshot, policy, (0, 600), (60, 600),
              sites=[US], data_classes={"health": 1.0})  # fmt: skip
    assert (out.done, out.refused, out.failed) == (0, 2, 0)
    assert out.cost == 0
    [(reason, count)] = out.reasons.items()
    assert count == 2 and "policy `health` requires a site in the EU/EEA" in reason
    assert out.violations == ()


def test_an_outage_takes_back_the_work_since_the_last_checkpoint(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """A 2 h job starts on the cheap site at 0; scaleway fails at 1 h 15 min for an hour.

    Checkpoints every 30 min keep 1 h; 15 min are lost. The same round moves the job to
    the dear site, where the remaining hour runs: 4,500 s at 3.60 and 3,600 s at 7.20.
    """
    outages = {"scaleway": {"windows": [{"at_hours": 1.25, "for_hours": 1}]}}
    out = run(tmp_path, snapshot, policy, (0, 7200), outages=outages)
    assert (out.done, out.failed, out.outages) == (1, 0, 1)
    assert out.lost_gpu_hours == Decimal("0.25")
    assert out.cost == Decimal("11.70")  # 1.25 h x 3.60 + 1 h x 7.20
    assert out.gpu_hours == Decimal("2.25") and out.done_gpu_hours == Decimal("2.00")
    assert (out.recoveries, out.recovery_mean_s) == (1, 0.0)


def test_without_checkpoints_an_outage_loses_the_whole_attempt(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    outages = {"scaleway": {"windows": [{"at_hours": 1.25, "for_hours": 1}]}}
    out = run(tmp_path, snapshot, policy, (0, 7200), outages=outages, checkpoint_minutes=0)
    assert out.lost_gpu_hours == Decimal("1.25")
    assert out.cost == Decimal("18.90")  # 1.25 h x 3.60 + the whole 2 h x 7.20


def test_a_job_whose_only_site_fails_waits_for_its_repair(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """One site, down from 1 h 15 min to 2 h 15 min: the job keeps its first hour, waits
    out the repair and runs its second hour from 2 h 15 min. Nothing fails."""
    outages = {"scaleway": {"windows": [{"at_hours": 1.25, "for_hours": 1}]}}
    out = run(tmp_path, snapshot, policy, (0, 7200), sites=[CHEAP], outages=outages)
    assert (out.done, out.refused, out.failed) == (1, 0, 0)
    assert out.gpu_hours == Decimal("2.25") and out.lost_gpu_hours == Decimal("0.25")
    assert out.cost == Decimal("8.10")  # 2.25 h x 3.60
    assert (out.recoveries, out.recovery_mean_s) == (1, 3600.0)


def test_the_same_seed_gives_the_same_figures(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    jobs = [(n * 300.0, 1800.0 + 60 * (n % 7)) for n in range(40)]
    extra = {
        "outages": {"scaleway": {"mtbf_hours": 2, "mttr_hours": 0.5}},
        "data_classes": {"public": 0.5, "health": 0.5},
        "seed": 3,
    }
    runs = []
    for n in range(2):
        folder = tmp_path / str(n)
        folder.mkdir()
        runs.append(run(folder, snapshot, policy, *jobs, **extra))
    first, second = runs
    assert first == second
    assert first.outages > 0 and first.violations == ()


@pytest.mark.parametrize(
    ("data_class", "site", "breaks"),
    [
        pytest.param("public", US, None, id="public anywhere"),
        pytest.param("health", US, "outside the EU/EEA", id="health in the US"),
        pytest.param("health", CHEAP, None, id="health at scaleway in FR"),
        pytest.param(
            "health",
            {**CHEAP, "name": "az", "provider": "azure", "country": "NL"},
            "CLOUD Act",
            id="health at azure in NL",
        ),
        pytest.param(
            "health",
            {**CHEAP, "name": "nb", "provider": "nebius", "country": "FI"},
            "CLOUD Act",
            id="health at nebius: exposure unclear",
        ),
        pytest.param(
            "health", {**CHEAP, "name": "no", "country": "NO"}, None, id="Norway is in the EEA"
        ),
    ],
)
def test_the_compliance_check_reads_the_policy_text(
    snapshot: CatalogSnapshot, data_class: str, site: dict[str, Any], breaks: str | None
) -> None:
    why = violation(data_class, SiteSpec.model_validate({"backend": "local", **site}), snapshot)
    assert (why is None) if breaks is None else (why is not None and breaks in why)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param({"strategies": {"x": {"sites": ["gcp-*"]}}}, "matches no site", id="pattern"),
        pytest.param({"data_classes": {"secret": 1}}, "not secret", id="class"),
        pytest.param(
            {"outages": {"gcp": {"windows": [{"at_hours": 1, "for_hours": 1}]}}},
            "is no site's provider",
            id="outage of no site's provider",
        ),
        pytest.param({"outages": {"scaleway": {"mtbf_hours": 5}}}, "mttr_hours", id="half"),
        pytest.param({"sites": [CHEAP, CHEAP]}, "share a name", id="same name"),
        pytest.param({"sites": [{**CHEAP, "country": "France"}]}, "sites[0]", id="bad site"),
        pytest.param({"round_seconds": 0}, "round_seconds", id="round"),
    ],
)
def test_a_bad_scenario_names_what_to_change(
    tmp_path: Path, change: dict[str, Any], says: str
) -> None:
    with pytest.raises(InputError, match=says.replace("[", r"\[")):
        scenario(tmp_path, trace(tmp_path, (0, 60)), **change)


def test_multi_gpu_and_unscheduled_pods_are_left_out_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "a,1,1,1,1000,,BE,Succeeded,10,70,20\n"  # kept: arrives at 10, runs 50 s
        + "b,1,1,8,1000,,BE,Succeeded,10,70,20\n"  # 8 GPUs
        + "c,1,1,1,500,,BE,Pending,10,70,\n"  # never scheduled
        + "d,1,1,1,1000,,BE,Succeeded,90000,90100,90000\n"  # day 1: outside the window
    )
    jobs = load_openb(path, 0, 1)
    assert [(j.name, j.arrival, j.work) for j in jobs.jobs] == [("a", 10.0, 50.0)]
    assert (jobs.skipped_multi_gpu, jobs.skipped_unscheduled) == (1, 1)


def test_the_cli_runs_a_scenario_file_as_simulate_file(tmp_path: Path) -> None:
    """`archipel simulate FILE.yaml --json`, as docs/simulate.md shows it."""
    jobs = trace(tmp_path, (0, 3600), (0, 3600), (0, 3600))
    spec = tmp_path / "s.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "cli",
                "trace": {"openb": jobs.name},
                "sites": [CHEAP],
                "strategies": {"one": {}, "again": {"sites": ["cheap"]}},
                "drain_hours": 5,
            }
        )
    )
    archipel = str(Path(sys.executable).parent / "archipel")
    shown = subprocess.run(
        [archipel, "simulate", str(spec), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)},
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert [s["strategy"] for s in doc["strategies"]] == ["one", "again"]
    assert {s["cost"] for s in doc["strategies"]} == {"10.80"}
    page = tmp_path / "report.html"
    written = subprocess.run(
        [archipel, "simulate", str(spec), "--report", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)},
    )
    assert written.returncode == 0, written.stderr
    html = page.read_text()
    assert html.count("<svg") == 2 and "<td>one</td>" in html and "<td>again</td>" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched
    assert "<script" not in html
    bad = subprocess.run([archipel, "simulate", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("windows", "k", "share"),
    [
        pytest.param([], 1, 1.0, id="no outage"),
        pytest.param([(10, "a", 20)], 1, 1.0, id="one of two down: one is up"),
        pytest.param([(10, "a", 20)], 2, 0.8, id="both up: 80 of 100 s"),
        pytest.param([(10, "a", 20), (20, "b", 20)], 1, 0.9, id="both down 20 to 30"),
        pytest.param([(90, "a", 50)], 2, 0.9, id="cut at the horizon"),
        pytest.param([(10, "c", 50)], 2, 1.0, id="another provider's outage"),
    ],
)
def test_the_share_of_time_with_k_providers_up(
    windows: list[tuple[float, str, float]], k: int, share: float
) -> None:
    assert up_share(windows, ["a", "b"], 100, k) == pytest.approx(share)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_drawn_outages_match_the_binomial_availability_of_k_of_n(k: int) -> None:
    """Three providers failing independently (MTBF 90 h, MTTR 10 h: each up 90% of the
    time): over 200,000 hours, the share with at least k up is the binomial tail
    sum_{j>=k} C(3, j) 0.9^j 0.1^(3-j), within a percent."""
    doc = {
        "name": "k-of-n",
        "seed": 11,
        "trace": {"openb": "unused.csv"},
        "sites": [dict(CHEAP, name=p, provider=p) for p in ("aws", "azure", "scaleway")],
        "strategies": {"all": {}},
        "outages": {p: {"mtbf_hours": 90, "mttr_hours": 10} for p in ("aws", "azure", "scaleway")},
    }
    spec = ScenarioSpec.model_validate(doc)
    horizon = 200_000 * 3600.0
    windows = draw_outages(spec, ["aws", "azure", "scaleway"], horizon)
    a = 90 / (90 + 10)
    expected = sum(math.comb(3, j) * a**j * (1 - a) ** (3 - j) for j in range(k, 4))
    assert up_share(windows, ["aws", "azure", "scaleway"], horizon, k) == pytest.approx(
        expected, abs=0.01
    )


# -- commitments ------------------------------------------------------------------------


def test_a_commitment_not_spent_is_owed_all_the_same(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """Price alone sends two one-hour jobs to the cheap site (2 x 3.60); the 20.00
    promised to ionos is not spent and is owed: 7.20 + 20.00."""
    out = run(tmp_path, snapshot, policy, (0, 3600), (0, 3600),
              commitments=[{"provider": "ionos", "amount": "20", "discount": "0.25"}])  # fmt: skip
    assert (out.cost, out.net_cost) == (Decimal("7.20"), Decimal("7.20"))
    assert (out.shortfall, out.total_cost) == (Decimal("20.00"), Decimal("27.20"))


def test_commitment_first_burns_the_commitment_then_goes_back_to_the_cheapest(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """10.80 promised to ionos at 25 % off: an hour there burns 7.20 x 0.75 = 5.40. The
    score (commitment 3, price 1) puts the two jobs at 0 on ionos (3 x 100 + 50 against
    100, over 4), which burns it all; the job at 2 h, with nothing left to burn, goes to
    the cheap site. List 2 x 7.20 + 3.60; paid 10.80 + 3.60, nothing owed."""
    out = run(tmp_path, snapshot, policy, (0, 3600), (0, 3600), (7200, 3600),
              commitments=[{"provider": "ionos", "amount": "10.80", "discount": "0.25"}],
              strategies={"burn": {"scores": {"commitment": 3, "price": 1}}})  # fmt: skip
    assert out.cost == Decimal("18.00")
    assert (out.net_cost, out.shortfall, out.total_cost) == (
        Decimal("14.40"), Decimal("0.00"), Decimal("14.40"),
    )  # fmt: skip
    assert out.spend_share == {"ionos": Decimal("0.8000"), "scaleway": Decimal("0.2000")}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param(
            {"strategies": {"burn": {"scores": {"commitment": 1}}}},
            "commitment needs commitments to burn",
            id="nothing to burn",
        ),
        pytest.param(
            {"commitments": [{"provider": "oracle", "amount": "5"}]},
            "'oracle' is no site's provider",
            id="unknown provider",
        ),
        pytest.param(
            {"commitments": [{"provider": "ionos", "amount": "5"}] * 2},
            "a second commitment with ionos",
            id="two for one provider",
        ),
        pytest.param(
            {"strategies": {"x": {"scores": {"speed": 1}}}},
            "strategies.x.scores",
            id="unknown score",
        ),
    ],
)
def test_bad_commitments_and_scores_name_what_to_change(
    tmp_path: Path, extra: dict[str, Any], says: str
) -> None:
    with pytest.raises(InputError, match=says):
        scenario(tmp_path, trace(tmp_path, (0, 60)), **extra)
