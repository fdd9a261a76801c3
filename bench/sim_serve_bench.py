"""Study 2 benchmark: an LLM service on spot over the 9 AWS V100 zones of the 45-day trace.

Runs `archipel simulate serve`'s three policies (all on-demand; spot in the first zone
only; spot hedged over every zone with on-demand fallback) for ``--hours`` of the shared
traces, with the Azure LLM conversation trace looped, 4 replicas of 16 slots, V100 prices
(spot 0.565488, on-demand 3.06 an hour: study 1's), and prints each policy's cost, its
saving against all on-demand (SkyServe reports 43% at high availability), availability,
latency percentiles, the share of requests that waited over 10 s, and the wall time.
Also the hedge over the first two zones only, to show what more zones buy.

Run: .venv/bin/python bench/sim_serve_bench.py [--traces DIR] [--hours 72]
"""

from __future__ import annotations

import argparse
import os
import time
from decimal import Decimal
from pathlib import Path

from archipel.cli._common import load_catalog, load_policy
from archipel.sim import load_trace
from archipel.sim._serve import ServeSpec, load_llm_trace, placer_for, simulate_serving

ROOT = Path(__file__).resolve().parents[1]
TRACES = Path("/work/shared/data/traces/spot/availability/1-node/aws-02-15-2023")
REQUESTS = ROOT / "examples/simulate/serve/AzureLLMInferenceTrace_conv.csv"
SPEC = ServeSpec(spot_price=Decimal("0.565488"), on_demand_price=Decimal("3.06"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--hours", type=float, default=72)
    args = parser.parse_args()
    zones = [load_trace(p) for p in sorted(args.traces.glob("*.json"))]
    requests = load_llm_trace(REQUESTS)
    snapshot, rules = load_catalog(), load_policy(None)
    print(f"{len(zones)} zones ({', '.join(z.name for z in zones)}); {args.hours:g} h; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("policy | zones | cost | saving | available | p50 s | p99 s | waited > 10 s | "
          "preemptions | wall s")  # fmt: skip
    baseline = None
    runs = [("on-demand", zones), ("spot", zones), ("spot-hedge", zones[:2]),
            ("spot-hedge", zones)]  # fmt: skip
    for policy, used in runs:
        t = time.perf_counter()
        placer = placer_for(used, SPEC, snapshot, rules)
        o = simulate_serving(used, requests, SPEC, policy, args.hours, placer=placer)
        wall = time.perf_counter() - t
        baseline = baseline or o.cost
        saving = 1 - o.cost / baseline
        p50 = "-" if o.p50 is None else f"{o.p50:.1f}"
        p99 = "-" if o.p99 is None else f"{o.p99:.1f}"
        missed = o.slo_missed / max(o.requests, 1)
        count = len(used) if policy != "on-demand" else "-"
        print(f"{policy} | {count} | {o.cost} | {saving:.1%} | {o.available:.2%} | {p50} | "
              f"{p99} | {missed:.1%} | {o.preemptions} | {wall:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
