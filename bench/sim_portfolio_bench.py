"""Study 3 benchmark: the example portfolio, with the real control plane in the loop.

It runs each strategy of ``examples/simulate/portfolio/scenario.yaml`` (or ``--scenario``)
and prints, per strategy: events, reconciler rounds, CPU and wall seconds, events and
rounds per CPU second, and the share of CPU in the reconciler's rounds. In the same run,
the baseline: the kernel alone running as many events with empty actions, which is what
the simulation would cost without the engine. Last, the issue's target: a million events
in 10 s, extrapolated from the measured rate.

Run: .venv/bin/python bench/sim_portfolio_bench.py [--scenario FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from archipel.cli._common import load_catalog, load_policy
from archipel.controlplane import Reconciler
from archipel.sim._kernel import Kernel
from archipel.sim._openb import load_openb
from archipel.sim._portfolio import parse_scenario, run_strategy

ROOT = Path(__file__).resolve().parents[1]
TARGET_EVENTS, TARGET_SECONDS = 1_000_000, 10.0


def kernel_alone(events: int) -> float:
    """CPU seconds for the kernel to schedule and run ``events`` empty actions."""
    k = Kernel(datetime(2026, 1, 1))
    started = time.process_time()
    for n in range(events):
        k.at(float(n % 997), lambda: None, priority=n % 3)
    k.run()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", type=Path, default=ROOT / "examples/simulate/portfolio/scenario.yaml"
    )
    args = parser.parse_args()
    path: Path = args.scenario
    scenario = parse_scenario(yaml.safe_load(path.read_text()), str(path), path.parent, load_openb)
    snapshot, policy = load_catalog(), load_policy(None)

    in_rounds = 0.0
    step = Reconciler.step

    def timed_step(self: Reconciler):  # type: ignore[no-untyped-def]
        nonlocal in_rounds
        t = time.process_time()
        try:
            return step(self)
        finally:
            in_rounds += time.process_time() - t

    Reconciler.step = timed_step  # type: ignore[method-assign]
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"scenario: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}, "
          f"{len(scenario.jobs.jobs)} jobs")  # fmt: skip
    header = ("strategy", "events", "rounds", "CPU s", "wall s", "events/CPU s",
              "rounds/CPU s", "CPU in rounds")  # fmt: skip
    print(" | ".join(header))
    total_events = total_cpu = 0.0
    for name in scenario.spec.strategies:
        in_rounds = 0.0
        with tempfile.TemporaryDirectory() as folder:
            wall, cpu = time.perf_counter(), time.process_time()
            out = run_strategy(scenario, name, snapshot, policy, Path(folder))
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
        total_events += out.events
        total_cpu += cpu
        share = in_rounds / cpu
        print(f"{name} | {out.events} | {out.rounds} | {cpu:.2f} | {wall:.2f} | "
              f"{out.events / cpu:,.0f} | {out.rounds / cpu:,.0f} | {share:.0%}")  # fmt: skip
    alone = kernel_alone(int(total_events))
    rate = total_events / total_cpu
    print(f"baseline, the kernel alone: {int(total_events)} events in {alone:.3f} CPU s "
          f"({total_events / alone:,.0f} events/CPU s)")  # fmt: skip
    needed = TARGET_EVENTS / rate
    verdict = "PASS" if needed <= TARGET_SECONDS else "FAIL"
    print(f"target: {TARGET_EVENTS:,} events in <= {TARGET_SECONDS:g} s; at the measured "
          f"{rate:,.0f} events/CPU s that is {needed:,.0f} CPU s: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
