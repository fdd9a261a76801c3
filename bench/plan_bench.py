"""Single-workload planning figures, next to SkyPilot 0.14.1's optimizer on the same catalog.

Run with ``make bench`` (or ``.venv/bin/python bench/plan_bench.py``). In one run it measures:

1. in-process, warm: snapshot load, and ``Planner.plan`` over the whole catalog for a fixed,
   seeded mix of requests (accelerators, data classes, spot, EU-only, provider exclusions);
2. cold process: ``archipel plan ... --json`` end to end as a subprocess, with a breakdown of
   where a cold start spends its time and the costliest imports;
3. the baseline: SkyPilot 0.14.1's ``Optimizer.optimize`` on the same SkyPilot-format CSVs,
   warm per request, and its import time, in its own virtualenv and subprocess
   (``bench/skypilot_baseline.py``; ``bench/setup_skypilot.sh`` is run first if that
   virtualenv is missing).

If the baseline cannot be set up or run, Archipel's figures are still printed with the reason.
Targets (issue "foundation"): warm plan median <= 20 ms, cold ``archipel plan --json`` median
<= 1.0 s. The script exits 0 whatever the figures, unless ``--strict`` is given. Wall-clock
figures depend on the machine: this is a script, never a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SKY_VENV = BENCH / ".venv-skypilot"
SKY_PYTHON = SKY_VENV / "bin" / "python"
SKY_MARKER = SKY_VENV / ".installed-skypilot-0.14.1"  # written last by setup_skypilot.sh
SEED = 20260522

ACCELERATORS = ("H100:8", "A100-80GB:8", "L40S:1", "L4:1", "H200:8")
DATA_CLASSES = ("public", "internal", "personal", "health", "sovereign")
EXCLUSIONS: tuple[tuple[str, ...], ...] = ((), (), ("aws",), ("vast",), ("aws", "azure", "gcp"))

WARM_TARGET_MS = 20.0
COLD_TARGET_S = 1.0


@dataclass(frozen=True)
class Case:
    """One request of the mix, as flags of ``archipel plan``."""

    gpus: str
    data_class: str
    spot: bool
    eu_only: bool
    exclude: tuple[str, ...]

    def argv(self) -> list[str]:
        args = ["plan", "--gpus", self.gpus, "--data-class", self.data_class]
        args.append("--spot" if self.spot else "--no-spot")
        if self.eu_only:
            args += ["--countries", "EU"]
        if self.exclude:
            args += ["--exclude-providers", ",".join(self.exclude)]
        return [*args, "--json"]

    def label(self) -> str:
        return " ".join(self.argv()[1:-1])


def request_mix(n: int, seed: int = SEED) -> list[Case]:
    """A fixed, seeded mix: every accelerator and data class, some spot, EU-only, exclusions."""
    rng = random.Random(seed)
    return [
        Case(
            gpus=ACCELERATORS[i % len(ACCELERATORS)],
            data_class=rng.choice(DATA_CLASSES),
            spot=rng.random() < 0.35,
            eu_only=rng.random() < 0.3,
            exclude=rng.choice(EXCLUSIONS),
        )
        for i in range(n)
    ]


# -- small helpers -----------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def archipel_exe() -> Path:
    here = Path(sys.executable).parent / "archipel"
    if here.exists():
        return here
    found = shutil.which("archipel")
    if found is None:
        raise SystemExit("cannot find the `archipel` command: run `make bench` (it installs it)")
    return Path(found)


def _grep(path: str, pattern: str) -> str | None:
    try:
        m = re.search(pattern, Path(path).read_text(), re.M)
    except OSError:
        return None
    return m[1].strip() if m else None


def machine() -> dict[str, str]:
    cpu = _grep("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "?"
    kib = _grep("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    os_name = _grep("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)') or platform.platform()
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{int(kib) / 1024 / 1024:.1f} GiB" if kib else "?",
        "python": platform.python_version(),
        "os": f"{os_name} ({platform.machine()}, kernel {platform.release()})",
    }


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. in process, warm -------------------------------------------------------------------


def bench_in_process(cases: list[Case], loads: int) -> dict[str, Any]:
    from archipel.catalog import load_snapshot
    from archipel.cli._documents import plan_document
    from archipel.core import parse_accelerator_spec
    from archipel.placement import PlacementRequest, Planner
    from archipel.policy import default_policy

    load_s = []
    for _ in range(loads):
        started = time.perf_counter()
        snapshot = load_snapshot()
        load_s.append(time.perf_counter() - started)
    policy = default_policy()
    requests = [
        PlacementRequest(
            accelerators=(parse_accelerator_spec(c.gpus),),
            data_class=c.data_class,
            spot=c.spot,
            countries=("EU",) if c.eu_only else (),
            exclude_providers=c.exclude,
        )
        for c in cases
    ]

    planner = Planner(snapshot, policy)
    started = time.perf_counter()
    planner.plan(requests[0])
    first_ms = (time.perf_counter() - started) * 1000

    for r in requests:  # warm-up pass: every data class's policy verdicts get cached
        planner.plan(r)
    plan_ms, doc_ms, feasible = [], [], 0
    for r in requests:
        started = time.perf_counter()
        plan = planner.plan(r)
        plan_ms.append((time.perf_counter() - started) * 1000)
        json.dumps(plan_document(plan, snapshot))
        doc_ms.append((time.perf_counter() - started) * 1000)
        feasible += plan.feasible

    return {
        "offers": len(snapshot.offers),
        "snapshot_load_first_ms": load_s[0] * 1000,
        "snapshot_load_median_ms": statistics.median(load_s) * 1000,
        "first_plan_ms": first_ms,
        "requests": len(requests),
        "feasible": feasible,
        "plan_median_ms": statistics.median(plan_ms),
        "plan_p95_ms": pct(plan_ms, 95),
        "plan_max_ms": max(plan_ms),
        "plan_json_median_ms": statistics.median(doc_ms),
    }


def public_picks(pairs: list[tuple[str, bool]]) -> dict[str, Any]:
    """Archipel's cheapest placement per (accelerator, spot), data class public, no constraint."""
    from archipel.catalog import load_snapshot
    from archipel.core import parse_accelerator_spec
    from archipel.placement import PlacementRequest, Planner
    from archipel.policy import default_policy

    planner = Planner(load_snapshot(), default_policy())
    out: dict[str, Any] = {}
    for gpus, spot in pairs:
        request = PlacementRequest(
            accelerators=(parse_accelerator_spec(gpus),), data_class="public", spot=spot
        )
        plan = planner.plan(request, top=1)
        key = f"{gpus}{' spot' if spot else ''}"
        if not plan.placements:
            out[key] = {"feasible": False}
            continue
        p = plan.placements[0]
        out[key] = {
            "feasible": True,
            "provider": p.offer.provider,
            "region": p.offer.region,
            "instance_type": p.offer.instance_type,
            "spot": p.spot,
            "price_per_hour": float(p.comparison_total),
        }
    return out


# -- 2. cold process -----------------------------------------------------------------------

_BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
from archipel.cli import app
t1 = time.perf_counter()
from archipel.catalog import load_snapshot
from archipel.cli._documents import plan_document
from archipel.core import parse_accelerator_spec
from archipel.placement import PlacementRequest, Planner
from archipel.policy import default_policy
t2 = time.perf_counter()
snapshot = load_snapshot()
t3 = time.perf_counter()
planner = Planner(snapshot, default_policy())
t4 = time.perf_counter()
plan = planner.plan(PlacementRequest(accelerators=(parse_accelerator_spec("H100:8"),)))
t5 = time.perf_counter()
text = json.dumps(plan_document(plan, snapshot), indent=2)
t6 = time.perf_counter()
print(json.dumps({
    "import archipel.cli (typer, click, archipel.core: numpy, pydantic)": t1 - t0,
    "import archipel catalog, placement, policy, output": t2 - t1,
    "load the snapshot (.npz, 89k offers)": t3 - t2,
    "read the default policy (YAML)": t4 - t3,
    "first plan (policy verdicts for one data class)": t5 - t4,
    "JSON document": t6 - t5,
}))
"""


def _run(argv: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    return time.perf_counter() - started, proc


def bench_cold(cases: list[Case], runs: int) -> dict[str, Any]:
    exe = str(archipel_exe())
    python = sys.executable
    _run([exe, *cases[0].argv()])  # untimed: fill the OS page cache (a cold *process*, not disk)
    wall = []
    for case in cases[:runs]:
        elapsed, proc = _run([exe, *case.argv()])
        if proc.returncode not in (0, 1):  # 1 = no feasible placement, still a full plan
            raise SystemExit(f"`archipel {case.label()} --json` failed:\n{proc.stderr}")
        json.loads(proc.stdout)
        wall.append(elapsed)

    startup = [_run([python, "-c", "pass"])[0] for _ in range(5)]
    phases: dict[str, list[float]] = {}
    imports = []  # the first two phases: every import of a plan
    for _ in range(5):
        _, proc = _run([python, "-c", _BREAKDOWN])
        if proc.returncode != 0:
            raise SystemExit(f"cold-start breakdown failed:\n{proc.stderr}")
        run = json.loads(proc.stdout)
        for name, seconds in run.items():
            phases.setdefault(name, []).append(seconds)
        imports.append(sum(list(run.values())[:2]))

    run_cli = (
        "import sys; from archipel.cli import main; "
        f"sys.argv = ['archipel', *{cases[0].argv()!r}]; main()"
    )
    _, proc = _run([python, "-X", "importtime", "-c", run_cli])
    return {
        "runs": len(wall),
        "cli_median_s": statistics.median(wall),
        "cli_p95_s": pct(wall, 95),
        "cli_max_s": max(wall),
        "python_startup_s": statistics.median(startup),
        "phases_s": {name: statistics.median(v) for name, v in phases.items()},
        "import_s": statistics.median(imports),
        "top_imports": top_imports(proc.stderr),
    }


def top_imports(importtime: str, n: int = 8) -> list[tuple[str, float]]:
    """Import time per top-level package (own time of all its modules, ms), costliest first.

    From ``-X importtime`` output; a package's total is the ``self`` time of every module
    under it, wherever it was imported from, so the totals add up to the whole import time.
    """
    costs: dict[str, float] = {}
    for line in importtime.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)", line)
        if m:
            root = m[2].split(".")[0]
            costs[root] = costs.get(root, 0.0) + int(m[1]) / 1000
    ranked = sorted(costs.items(), key=lambda kv: -kv[1])
    rest = sum(ms for _, ms in ranked[n:])
    return [
        *ranked[:n],
        (f"{len(ranked) - n} other packages", rest),
        ("total", sum(costs.values())),
    ]


# -- 3. the SkyPilot baseline ----------------------------------------------------------------


def ensure_skypilot() -> str | None:
    """Make SkyPilot's virtualenv if missing; the reason it cannot be used, or None."""
    if SKY_MARKER.exists():
        return None
    say(
        "SkyPilot baseline: bench/.venv-skypilot is missing or incomplete, "
        "running bench/setup_skypilot.sh (a minute or two)"
    )
    try:
        proc = subprocess.run(
            ["bash", str(BENCH / "setup_skypilot.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "bench/setup_skypilot.sh did not finish in 15 minutes"
    if proc.returncode != 0 or not SKY_MARKER.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return "bench/setup_skypilot.sh failed: " + " / ".join(tail)
    return None


def bench_skypilot(cases: list[Case], import_runs: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    from skypilot_baseline import prepare_home, sky_env

    script = str(BENCH / "skypilot_baseline.py")
    home = prepare_home()
    try:
        env = sky_env(home)
        out = home / "figures.json"
        imports, wall = [], []
        for _ in range(import_runs):
            elapsed, proc = _run(
                [str(SKY_PYTHON), script, "--import-only", "--out", str(out)], env=env
            )
            if proc.returncode != 0:
                raise RuntimeError(f"import sky failed: {proc.stderr.strip()[-500:]}")
            imports.append(json.loads(out.read_text())["import_s"])
            wall.append(elapsed)
        requests = [[c.gpus.split(":")[0], int(c.gpus.split(":")[1]), c.spot] for c in cases]
        _, proc = _run(
            [str(SKY_PYTHON), script, "--requests", json.dumps(requests), "--out", str(out)],
            env=env,
            timeout=400,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the optimizer run failed: {proc.stderr.strip()[-800:]}")
        figures: dict[str, Any] = json.loads(out.read_text())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    warm = [s * 1000 for s in figures["warm_s"]]
    figures.update(
        {
            "import_median_s": statistics.median(imports),
            "import_process_median_s": statistics.median(wall),
            "warm_median_ms": statistics.median(warm),
            "warm_p95_ms": pct(warm, 95),
            "requests": len(warm),
        }
    )
    return figures


# -- report ----------------------------------------------------------------------------------


def fmt_ms(ms: float | None) -> str:
    return "-" if ms is None else (f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms")


def fmt_s(s: float | None) -> str:
    return "-" if s is None else f"{s:.3f} s"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "FAIL"


def report(figs: dict[str, Any]) -> tuple[str, bool]:
    a, c, s = figs["archipel"], figs["cold"], figs.get("skypilot")
    sky_name = f"SkyPilot {s['skypilot_version']}" if s else "SkyPilot"
    missing = "n/a"

    def sky(key: str, unit: str) -> str:
        if not s:
            return missing
        return fmt_ms(s[key]) if unit == "ms" else fmt_s(s[key])

    cold_baseline = (
        fmt_s(s["import_median_s"] + s["first_optimize_s"]) + " (import + 1st optimize)"
        if s
        else missing
    )
    warm_ok = a["plan_median_ms"] <= WARM_TARGET_MS
    cold_ok = c["cli_median_s"] <= COLD_TARGET_S
    rows = [
        ["metric", "Archipel", sky_name, "target", "result"],
        [
            f"plan, warm, median (N={a['requests']} / {s['requests'] if s else 0})",
            fmt_ms(a["plan_median_ms"]),
            sky("warm_median_ms", "ms"),
            f"<= {WARM_TARGET_MS:g} ms",
            verdict(a["plan_median_ms"], WARM_TARGET_MS),
        ],
        ["plan, warm, p95", fmt_ms(a["plan_p95_ms"]), sky("warm_p95_ms", "ms"), "-", "-"],
        [
            "plan + JSON document, warm, median",
            fmt_ms(a["plan_json_median_ms"]),
            "-",
            "-",
            "-",
        ],
        [
            "first plan in a process (cold caches)",
            fmt_ms(a["first_plan_ms"]),
            fmt_ms(s["first_optimize_s"] * 1000) if s else missing,
            "-",
            "-",
        ],
        [
            "snapshot load, in process (median)",
            fmt_ms(a["snapshot_load_median_ms"]),
            "read lazily in 1st optimize" if s else missing,
            "-",
            "-",
        ],
        [
            "import (archipel.cli+engine / sky+optimizer)",
            fmt_s(c["import_s"]),
            sky("import_median_s", "s"),
            "-",
            "-",
        ],
        [
            f"cold `archipel plan --json`, median (N={c['runs']})",
            fmt_s(c["cli_median_s"]),
            cold_baseline,
            f"<= {COLD_TARGET_S:g} s",
            verdict(c["cli_median_s"], COLD_TARGET_S),
        ],
        ["cold `archipel plan --json`, p95", fmt_s(c["cli_p95_s"]), "-", "-", "-"],
    ]
    if s:
        speed = s["warm_median_ms"] / a["plan_median_ms"]
        rows.append(
            ["warm speed-up (baseline median / Archipel median)", f"{speed:.0f}x", "", "", ""]
        )
    return table(rows), warm_ok and cold_ok


def picks_table(archipel: dict[str, Any], sky: dict[str, Any]) -> str:
    rows = [["request", "Archipel (class public)", "SkyPilot"]]

    def show(p: dict[str, Any] | None, who: str) -> str:
        if p is None:
            return "-"
        if not p["feasible"]:
            return "infeasible"
        where = p["provider"] if who == "a" else p["cloud"].lower()
        spot = " spot" if p["spot"] else ""
        return f"{where} {p['instance_type']}{spot} ${p['price_per_hour']:.2f}/h"

    for key in archipel:
        rows.append([key, show(archipel[key], "a"), show(sky.get(key), "s")])
    return table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="warm requests (default 200)")
    parser.add_argument("--cold-runs", type=int, default=15, help="cold CLI runs (default 15)")
    parser.add_argument("--sky-requests", type=int, default=25, help="SkyPilot warm requests")
    parser.add_argument("--sky-import-runs", type=int, default=5, help="SkyPilot import runs")
    parser.add_argument("--no-baseline", action="store_true", help="skip SkyPilot")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    started = time.perf_counter()
    cases = request_mix(max(args.requests, args.cold_runs, args.sky_requests))
    figs: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seed": SEED,
        "load_before": os.getloadavg()[0],
    }
    say(f"1/3 Archipel in process: {args.requests} warm plans")
    figs["archipel"] = bench_in_process(cases[: args.requests], loads=10)
    say(f"2/3 Archipel cold process: {args.cold_runs} runs of `archipel plan ... --json`")
    figs["cold"] = bench_cold(cases, args.cold_runs)

    baseline_missing = "skipped (--no-baseline)" if args.no_baseline else ensure_skypilot()
    if baseline_missing is None:
        say(
            f"3/3 SkyPilot baseline: {args.sky_import_runs} imports, "
            f"{args.sky_requests} warm optimizer calls (about a minute)"
        )
        try:
            figs["skypilot"] = bench_skypilot(cases[: args.sky_requests], args.sky_import_runs)
        except (RuntimeError, OSError, KeyError, ValueError, subprocess.TimeoutExpired) as exc:
            baseline_missing = f"SkyPilot run failed: {exc}"
    figs["baseline_missing"] = baseline_missing
    figs["total_s"] = time.perf_counter() - started

    m = figs["machine"]
    a, c = figs["archipel"], figs["cold"]
    print(f"# Archipel plan benchmark ({figs['date']})")
    print(f"machine: {m['cpus']} CPUs, {m['cpu']}, {m['ram']} RAM, Python {m['python']}, {m['os']}")
    print(
        f"catalog: {a['offers']:,} offers; request mix: seed {SEED}, "
        f"{a['feasible']}/{a['requests']} feasible"
    )
    busy = figs["load_before"] > 0.5  # the benchmark itself keeps one core busy afterwards
    print(
        f"load average (1 min) before the run: {figs['load_before']:.2f}"
        + ("  <- other work was running: figures are pessimistic" if busy else "")
    )
    print()
    text, ok = report(figs)
    print(text)
    print()
    print("where a cold `archipel plan --json` spends its time (medians of 5 runs):")
    print(f"  {c['python_startup_s'] * 1000:7.1f} ms  start the interpreter (python -c pass)")
    for name, seconds in c["phases_s"].items():
        print(f"  {seconds * 1000:7.1f} ms  {name}")
    rest = c["cli_median_s"] - c["python_startup_s"] - sum(c["phases_s"].values())
    print(f"  {rest * 1000:7.1f} ms  the rest, by difference with the CLI median: entry point,")
    print("             command-line parsing, workload validation, interpreter exit")
    print("import time per package in `archipel plan --json` (-X importtime, own time, ms):")
    for name, ms in c["top_imports"]:
        print(f"  {ms:7.1f} ms  {name}")
    print()
    s = figs.get("skypilot")
    if s:
        print(
            f"baseline: SkyPilot {s['skypilot_version']} `Optimizer.optimize` in its own venv "
            f"(Python {s['python']}), HOME = a temporary copy of the same catalog CSVs; "
            f"enabled clouds faked ({s['patched']}): {', '.join(s['enabled_clouds'])}. "
            "Its requests carry only accelerator and spot (it has no data class, country "
            "or provider-exclusion notion)."
        )
        pairs = list(dict.fromkeys((x.gpus, x.spot) for x in cases[: args.sky_requests]))
        print()
        print("cheapest pick per request, no sovereignty constraint:")
        print(picks_table(public_picks(pairs), s["picks"]))
    else:
        print(
            f"baseline missing: {baseline_missing}. Figures quoted in the issue for SkyPilot "
            "0.14.1 on this machine: optimizer 0.5-1.0 s warm per request, 1.8-3 s import."
        )
    print(f"\ntotal benchmark time: {figs['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figs, indent=2, default=str))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
