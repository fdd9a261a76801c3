"""Did a change make Archipel slower? The plan, fleet, control-plane and gateway figures of
two trees, measured in one sitting, interleaved, with the noise of each figure.

    .venv/bin/python bench/regression.py --base c760c5f            # every suite, 2 rounds
    .venv/bin/python bench/regression.py --base main --only plan,fleet --rounds 3

``base`` is any git revision (exported with ``git archive``); ``head`` is this working
tree, uncommitted changes included. Each side runs its *own* benchmark scripts against its
own ``src/`` (``PYTHONPATH``), with this checkout's virtualenv, so a renamed API is
measured on each side as that side wrote it. Rounds alternate the order (base, head, then
head, base, ...) so that a machine getting busier or cooler does not favour one side.

The noise of a figure is the largest relative spread between two rounds of the *same*
side. A change of head against base is reported as a regression only when it is worse
than base by more than that noise (and more than 5 %, the floor for two rounds). The
script prints its figures and exits 0; it never fails a build (wall-clock figures depend
on the machine).

Suites (smaller versions of the full benchmarks, to fit one sitting):
- plan: ``plan_bench.py --no-baseline``: warm plan median, cold ``archipel plan --json``;
- fleet: ``fleet_bench.py --sizes 1000``: 1,000 workloads end to end;
- controlplane: ``controlplane_bench.py --no-slurm``: submissions/s over HTTP on
  PostgreSQL, one reconcile round on SQLite and PostgreSQL, recovery on local sites;
- gateway: ``gateway/run.sh`` with the Archipel gateway only (wrk; c=1 and 32, JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Figures = dict[str, float]
#: suite -> side -> figure -> one value per round
Results = dict[str, dict[str, dict[str, list[float]]]]


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    lower_is_better: bool


@dataclass(frozen=True)
class Suite:
    name: str
    figures: tuple[Figure, ...]
    run: Callable[[Path, Path], Figures]  # (tree, scratch folder) -> figures


def _python(tree: Path, *args: str, timeout: float = 1800) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} in {tree} exited {proc.returncode}: {proc.stderr[-800:]}"
        )
    return proc.stdout


def run_plan(tree: Path, scratch: Path) -> Figures:
    out = scratch / "plan.json"
    _python(
        tree,
        "bench/plan_bench.py",
        "--no-baseline",
        "--requests",
        "200",
        "--cold-runs",
        "7",
        "--json",
        str(out),
    )
    figs = json.loads(out.read_text())
    return {
        "warm plan median": figs["archipel"]["plan_median_ms"],
        "warm plan p95": figs["archipel"]["plan_p95_ms"],
        "cold plan --json median": figs["cold"]["cli_median_s"] * 1000,
    }


def run_fleet(tree: Path, scratch: Path) -> Figures:
    text = _python(tree, "bench/fleet_bench.py", "--sizes", "1000")
    match = re.search(r"1000 workloads:\s+([\d.]+) s end to end .*solver ([\d.]+) s", text)
    if match is None:
        raise RuntimeError(f"fleet_bench.py printed no 1000-workload line:\n{text[-800:]}")
    return {"fleet 1,000 end to end": float(match[1]), "fleet 1,000 solver": float(match[2])}


def run_controlplane(tree: Path, scratch: Path) -> Figures:
    out = scratch / "cp.json"
    _python(
        tree,
        "bench/controlplane_bench.py",
        "--no-slurm",
        "--submissions",
        "1000",
        "--runs",
        "5000",
        "--json",
        str(out),
    )
    r = json.loads(out.read_text())
    return {
        "submissions/s (16 clients, 1 replica)": r["submissions_c16_r1"]["rps"],
        "submission p99": r["submissions_c16_r1"]["p99_ms"],
        "reconcile 5,000 runs, SQLite": r["reconcile_sqlite"]["steady_s"] * 1000,
        "reconcile 5,000 runs, PostgreSQL": r["reconcile_postgresql"]["steady_s"] * 1000,
        "recovery, local sites": r["recovery_local"]["median_s"],
    }


def run_gateway(tree: Path, scratch: Path) -> Figures:
    out = scratch / "gateway"
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "src"),
        # the shared harness beside this checkout: an exported tree has no such neighbour
        "HARNESS": os.environ.get("HARNESS", str(ROOT.parent / "shared" / "bench" / "gateway")),
        "TARGETS": "archipel",
        "REPS": "1",
        "DURATION": "8",
        "C1_DURATION": "6",
        "CONC": "1,32",
        "MODES": "json",
        "OUT": str(out),
    }
    done = subprocess.run(
        ["bash", "bench/gateway/run.sh"],
        cwd=tree,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/gateway/run.sh exited {done.returncode}: {done.stderr[-800:]}")
    rows = [json.loads(line) for line in (out / "raw.jsonl").read_text().splitlines()]
    figs: Figures = {}
    for row in rows:  # the harness's raw rows: target, conc, rps, p50_ms, gw_cpu_ms_per_req...
        if row.get("target") == "archipel":
            figs[f"gateway c={row['conc']} req/s"] = row["rps"]
            figs[f"gateway c={row['conc']} p50"] = row["p50_ms"]
            figs[f"gateway c={row['conc']} CPU per request"] = row["gw_cpu_ms_per_req"]
    return figs


SUITES = {
    "plan": Suite(
        "plan",
        (
            Figure("warm plan median", "ms", True),
            Figure("warm plan p95", "ms", True),
            Figure("cold plan --json median", "ms", True),
        ),
        run_plan,
    ),
    "fleet": Suite(
        "fleet",
        (
            Figure("fleet 1,000 end to end", "s", True),
            Figure("fleet 1,000 solver", "s", True),
        ),
        run_fleet,
    ),
    "controlplane": Suite(
        "controlplane",
        (
            Figure("submissions/s (16 clients, 1 replica)", "/s", False),
            Figure("submission p99", "ms", True),
            Figure("reconcile 5,000 runs, SQLite", "ms", True),
            Figure("reconcile 5,000 runs, PostgreSQL", "ms", True),
            Figure("recovery, local sites", "s", True),
        ),
        run_controlplane,
    ),
    "gateway": Suite(
        "gateway",
        (
            Figure("gateway c=1 req/s", "/s", False),
            Figure("gateway c=1 p50", "ms", True),
            Figure("gateway c=1 CPU per request", "ms", True),
            Figure("gateway c=32 req/s", "/s", False),
            Figure("gateway c=32 p50", "ms", True),
            Figure("gateway c=32 CPU per request", "ms", True),
        ),
        run_gateway,
    ),
}


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` under ``into``, with this checkout's virtualenv beside it."""
    archive = into / "base.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", rev], cwd=ROOT, stdout=f, check=True)
    tree = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    (tree / ".venv").symlink_to(ROOT / ".venv")
    return tree


def noise(values: list[float]) -> float:
    """The largest relative spread between rounds of one side (0 with one round)."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if len(values) > 1 and mid else 0.0


def verdict(figure: Figure, base: list[float], head: list[float]) -> tuple[float, float, str]:
    change = statistics.median(head) / statistics.median(base) - 1
    worse = change if figure.lower_is_better else -change
    allowed = max(noise(base), noise(head), 0.05)
    if worse > allowed:
        return change, allowed, "SLOWER"
    if worse < -allowed:
        return change, allowed, "faster"
    return change, allowed, "same (within noise)"


def measure(suites: list[Suite], trees: dict[str, Path], rounds: int, scratch: Path) -> Results:
    results: Results = {}
    for suite in suites:
        results[suite.name] = {side: {} for side in trees}
        for r in range(rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for side in order:
                print(
                    f"[{time.strftime('%H:%M:%S')}] {suite.name}: round {r + 1}, {side}",
                    file=sys.stderr,
                    flush=True,
                )
                folder = scratch / f"{suite.name}-{side}-{r}"
                folder.mkdir()
                try:
                    figures = suite.run(trees[side], folder)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    # one suite that cannot run does not lose the others' figures
                    print(f"  {suite.name} failed on {side}: {exc}", file=sys.stderr, flush=True)
                    continue
                for name, value in figures.items():
                    results[suite.name][side].setdefault(name, []).append(value)
    return results


def report(suites: list[Suite], results: Results, base_rev: str, rounds: int) -> None:
    print(f"# regression check: {base_rev} (base) against this tree (head), {rounds} rounds")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.platform()}, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"\n{'figure':<42}{'base':>12}{'head':>12}{'change':>9}{'noise':>8}  verdict")
    for suite in suites:
        for fig in suite.figures:
            base = results[suite.name]["base"].get(fig.name)
            head = results[suite.name]["head"].get(fig.name)
            if not base or not head:
                print(f"{fig.name:<42}{'(not measured)':>24}")
                continue
            change, allowed, word = verdict(fig, base, head)
            print(
                f"{fig.name + ' (' + fig.unit + ')':<42}{statistics.median(base):>12.2f}"
                f"{statistics.median(head):>12.2f}{change:>+9.1%}{allowed:>8.1%}  {word}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side (default 2)")
    parser.add_argument("--only", default=",".join(SUITES), help="suites, comma-separated")
    parser.add_argument("--json", type=Path, help="also write every measured value here")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    suites = [SUITES[name] for name in wanted]
    with tempfile.TemporaryDirectory(prefix="archipel-regression-") as tmp:
        scratch = Path(tmp)
        trees = {"base": export(args.base, scratch), "head": ROOT}
        results = measure(suites, trees, args.rounds, scratch)
    report(suites, results, args.base, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
