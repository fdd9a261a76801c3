"""Study 1 benchmark: deadline jobs on the 9 AWS V100 zones of the 45-day spot trace.

For each zone (the job's home zone), each job length and each slack (deadline = job x
(1 + slack)), it runs on-demand, greedy, Uniform Progress and the exact optimum on the
home zone, and the multi-zone ``archipel`` policy on all 9 zones (home zone first). It
prints the mean saving against on-demand per policy, greedy's and Uniform Progress's gap
to the optimum, the share of greedy's gap that Uniform Progress closes, the share of
Uniform Progress's remaining gap that archipel closes, deadlines met, and the wall time
against the issue's 60 s target. Deterministic: no randomness, starts are fixed offsets.

Run: .venv/bin/python bench/sim_spot_bench.py [--traces DIR] [--starts 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

from archipel.sim import SpotJob, SpotPrices, load_trace, simulate

TRACES = Path("/work/shared/data/traces/spot/availability/1-node/aws-02-15-2023")
JOBS = (Decimal(12), Decimal(24), Decimal(48))
SLACKS = (Decimal("0.1"), Decimal("0.25"), Decimal("0.5"), Decimal("0.75"), Decimal(1))
#: the catalog's 1x V100 offer azure/eastus/Standard_NC6s_v3 (on-demand = p3.2xlarge's $3.06)
PRICES = SpotPrices(spot=Decimal("0.565488"), on_demand=Decimal("3.06"))
POLICIES = ("on-demand", "greedy", "uniform-progress", "optimal", "archipel")


def _one(args: tuple[list[str], int, Decimal, Decimal, Decimal, Decimal]) -> dict[str, int]:
    paths, home, job, slack, changeover, start = args
    traces = [load_trace(Path(p)) for p in paths]
    order = [traces[home]] + [t for i, t in enumerate(traces) if i != home]
    spec = SpotJob.from_hours(job, job * (1 + slack), changeover, start)
    out = simulate(spec, order, PRICES)
    assert all(o.deadline_met for o in out), (paths[home], job, slack)
    best = next(o.cost_units for o in out if o.policy == "optimal")
    assert all(o.cost_units >= best for o in out if o.policy != "archipel"), (paths[home], job)
    return {o.policy: o.cost_units for o in out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--changeover", type=Decimal, default=Decimal("0.2"))
    parser.add_argument("--starts", type=int, default=1, help="start offsets per scenario")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.traces.glob("*.json"))
    span = Decimal(len(load_trace(Path(paths[0])))) * 195 / 3600
    longest = max(JOBS) * (1 + max(SLACKS))
    step = ((span - longest) / args.starts).quantize(Decimal(1)) if args.starts > 1 else 0
    starts = [Decimal(step) * i for i in range(args.starts)]
    tasks = [
        (paths, h, j, s, args.changeover, st)
        for h in range(len(paths))
        for j in JOBS
        for s in SLACKS
        for st in starts
    ]
    began = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_one, tasks, chunksize=4))
    wall = time.perf_counter() - began
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime

    saving: dict[str, list[float]] = defaultdict(list)
    by_slack: dict[Decimal, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    gaps: dict[str, int] = defaultdict(int)
    closed_up = closed_arch = 0.0
    for task, r in zip(tasks, results, strict=True):
        od = r["on-demand"]
        for p in POLICIES:
            saving[p].append(1 - r[p] / od)
            by_slack[task[3]][p].append(1 - r[p] / od)
        gaps["greedy"] += r["greedy"] - r["optimal"]
        gaps["uniform-progress"] += r["uniform-progress"] - r["optimal"]
        gaps["archipel"] += r["archipel"] - r["optimal"]
    print(
        f"{len(tasks)} scenarios: {len(paths)} zones x jobs {[str(j) for j in JOBS]} h x "
        f"slack {[f'{s:.0%}' for s in SLACKS]} x {len(starts)} start(s) "
        f"{[str(s) for s in starts]} h; changeover {args.changeover} h; "
        f"prices spot {PRICES.spot}, on-demand {PRICES.on_demand} USD/h"
    )
    print("mean saving vs on-demand:")
    for p in POLICIES:
        mean = sum(saving[p]) / len(saving[p])
        print(
            f"  {p:17s} {mean:7.1%}   (scenarios from {min(saving[p]):.1%} to {max(saving[p]):.1%})"
        )
    print("mean saving by slack:   " + "  ".join(f"{p[:8]:>8s}" for p in POLICIES))
    for s in SLACKS:
        row = by_slack[s]
        print(
            f"  slack {s:>5.0%}          "
            + "  ".join(f"{sum(row[p]) / len(row[p]):8.1%}" for p in POLICIES)
        )
    print("mean saving by home zone (spot share of the 45 days):")
    for h, path in enumerate(paths):
        trace = load_trace(Path(path))
        rows = [r for task, r in zip(tasks, results, strict=True) if task[1] == h]
        cells = "  ".join(
            f"{p} {sum(1 - r[p] / r['on-demand'] for r in rows) / len(rows):6.1%}"
            for p in POLICIES[1:]
        )
        print(f"  {trace.name:18s} {trace.available.mean():5.1%}  {cells}")
    g, u, a = gaps["greedy"], gaps["uniform-progress"], gaps["archipel"]
    total_od = sum(r["on-demand"] for r in results)
    print(
        f"gap to the optimum, as a share of the on-demand cost: greedy {g / total_od:.2%}, "
        f"uniform-progress {u / total_od:.2%}, archipel {a / total_od:.2%}"
    )
    if g:
        closed_up = 1 - u / g
        print(
            f"uniform progress closes {closed_up:.1%} of greedy's gap "
            f"(gap ratio greedy/UP = {g / u if u else float('inf'):.2f}x)"
        )
    if u:
        closed_arch = (u - a) / u
        print(
            f"archipel (9 zones) closes {closed_arch:.1%} of uniform progress's gap to the "
            "single-zone optimum (over 100%: cheaper than that optimum)"
        )
    print("deadlines met: 100% (asserted for every policy and scenario)")
    load = os.getloadavg()
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s in the workers, for {len(tasks)} scenarios x 5 "
        f"policies ({args.workers} workers; target 60 s wall); load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
