"""Fidelity benchmark: the openb trace replayed on its own cluster, simulated against observed
queueing delay, over several seeds.

Runs `archipel simulate replay`'s study (calibrate the scheduler model on the pods created
before the median creation time, replay every pod on the trace's node list, judge the
others) once per seed and prints, per seed: pods scheduled and never scheduled in the judged
half (observed 2,424 and 253 on the shared window), the simulated ones, the Wasserstein-1
distance (s) and the Kolmogorov-Smirnov statistic of the judged half's delays, the same
in sample, the baseline of capacity alone, and the wall time; then each figure's mean and
range over the seeds.

Run: .venv/bin/python bench/sim_replay_bench.py [--trace-dir DIR] [--seeds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from archipel.sim._openb import load_nodes, load_pods
from archipel.sim._replay import study

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "examples/simulate/replay"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace-dir", type=Path, default=TRACE)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    t = time.perf_counter()
    pods = load_pods(next(args.trace_dir.glob("openb_pod_list*.csv")))
    nodes = load_nodes(next(args.trace_dir.glob("openb_node_list*.csv")))
    print(f"{len(pods):,} pods, {len(nodes):,} nodes, read in {time.perf_counter() - t:.2f} s; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("seed | judged: scheduled obs/sim | never obs/sim | W1 s | KS | in sample: W1 s | KS "
          "| capacity alone: W1 s | KS | events | wall s")  # fmt: skip
    rows = []
    for seed in range(args.seeds):
        t = time.perf_counter()
        s = study(pods, nodes, seed)
        wall = time.perf_counter() - t
        j, c, b = s.judged, s.calibration, s.baseline
        figures = (j.w1, j.ks, c.w1, c.ks, b.w1, b.ks)
        if any(f is None for f in figures):
            raise SystemExit(f"seed {seed}: a half scheduled nothing, no distance to show")
        rows.append((*figures[:4], j.pods - len(j.simulated), wall))
        print(f"{seed} | {len(j.observed)}/{len(j.simulated)} | {j.pods - len(j.observed)}/"
              f"{j.pods - len(j.simulated)} | {j.w1:.1f} | {j.ks:.3f} | {c.w1:.1f} | {c.ks:.3f} "
              f"| {b.w1:.1f} | {b.ks:.3f} | {s.run.events:,} | {wall:.2f}")  # fmt: skip
    names = ("judged W1 s", "judged KS", "in-sample W1 s", "in-sample KS",
             "judged never scheduled (sim)", "wall s per study")  # fmt: skip
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        print(f"{name}: mean {statistics.fmean(values):.3f}, "
              f"from {min(values):.3f} to {max(values):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
