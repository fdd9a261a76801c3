"""Simulator events per second, with the real placement engine in the loop (study 2).

The issue's target: a million events in at most 10 s on this machine, with the real
engine in the loop. The run: `archipel simulate serve`'s spot-hedge policy over the nine
AWS V100 zones of the shared 45-day availability traces and the Azure LLM conversation
trace, for as many hours as make more than a million events (``--hours``, default 30).
The events are the kernel's: request arrivals, request completions, availability ticks
and replicas ready. Every replica the service launches is placed by the control plane's
placement engine (``SitePlacer.place``, the reconciler's call) under the ``internal``
data class, its answers memoised on the state of the sites (which cannot change a
decision: the engine is a pure function of it; the run is repeated without the memo,
and both must give the same figures).

Printed per run: events, CPU and wall seconds, events per CPU second, placement
decisions and engine calls, and the figures that must match. Baseline in the same run:
the kernel alone running as many empty events, scheduled one ahead as the study does.

Run: .venv/bin/python bench/sim_events_bench.py [--traces DIR] [--hours 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import subprocess
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from archipel.cli._common import load_catalog, load_policy
from archipel.sim import load_trace
from archipel.sim._kernel import Kernel
from archipel.sim._serve import ServeSpec, load_llm_trace, placer_for, simulate_serving

ROOT = Path(__file__).resolve().parents[1]
TRACES = Path("/work/shared/data/traces/spot/availability/1-node/aws-02-15-2023")
REQUESTS = ROOT / "examples/simulate/serve/AzureLLMInferenceTrace_conv.csv"
SPEC = ServeSpec(spot_price=Decimal("0.565488"), on_demand_price=Decimal("3.06"))
TARGET_EVENTS, TARGET_SECONDS = 1_000_000, 10.0


def kernel_alone(events: int) -> float:
    """CPU seconds for the kernel to run ``events`` empty actions, each scheduling the next."""
    k = Kernel(datetime(2026, 1, 1))

    def step(n: int) -> None:
        if n + 1 < events:
            k.at(k.now + 0.1, functools.partial(step, n + 1), priority=1)

    started = time.process_time()
    k.at(0.0, functools.partial(step, 0))
    k.run()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--hours", type=float, default=30)
    args = parser.parse_args()
    zones = [load_trace(p) for p in sorted(args.traces.glob("*.json"))]
    requests = load_llm_trace(REQUESTS)
    snapshot, policy = load_catalog(), load_policy(None)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; commit {commit}; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{len(zones)} zones, {args.hours:g} h, spot-hedge, data class internal")
    print("run | events | CPU s | wall s | events per CPU s | decisions | engine calls")
    outcomes, cpus = {}, {}
    for name, memo in (("engine, memoised", True), ("engine, every call", False)):
        placer = placer_for(zones, SPEC, snapshot, policy, memo=memo)
        wall, cpu = time.perf_counter(), time.process_time()
        out = simulate_serving(zones, requests, SPEC, "spot-hedge", args.hours, placer=placer)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        outcomes[name], cpus[name] = out, cpu
        print(f"{name} | {out.events:,} | {cpu:.2f} | {wall:.2f} | {out.events / cpu:,.0f} | "
              f"{out.decisions} | {out.engine_calls}")  # fmt: skip
    memo, fresh = outcomes.values()
    events = memo.events
    alone = kernel_alone(events)
    print(f"baseline: the kernel alone | {events:,} | {alone:.2f} | - | {events / alone:,.0f} "
          "| - | -")  # fmt: skip
    same = dataclasses.replace(memo, engine_calls=fresh.engine_calls) == fresh
    print(f"same figures with and without the memo: {same} (cost {memo.cost}, "
          f"{memo.requests:,} requests, {memo.preemptions} preemptions)")  # fmt: skip
    worst = max(cpus.values()) * TARGET_EVENTS / events
    verdict = "PASS" if worst <= TARGET_SECONDS and events >= TARGET_EVENTS and same else "FAIL"
    print(f"target: {TARGET_EVENTS:,} events in <= {TARGET_SECONDS:g} s with the engine in the "
          f"loop: {worst:.2f} CPU s a million (slower run, {events:,} events): "
          f"{verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
