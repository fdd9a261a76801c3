"""Fairness benchmark: how long a small run of tenant B waits while tenant A has a burst pending.

The scenario, run once on this tree and once on a baseline commit (default: where this
branch left main, whose reconciler placed waiting runs oldest first, all of them each
round), each in a fresh process with that commit's ``src`` first on ``sys.path``:

1. a control-plane store (SQLite, the server's default) and two sites on the in-memory fake
   backend with 8 slots each;
2. tenant A submits one service with ``replicas: 10000`` (written with ``Store.submit_group``,
   as the API took it before quotas existed); each replica exits 0 as soon as it is observed,
   so it holds a slot for one round and the slots turn over every round;
3. the reconciler runs in a thread, round after round, with the server's default 1 s between
   rounds; as soon as its first round has started, tenant B submits one small run;
4. B's time to start: from B's submission until its attempt is launched on a backend (polled
   every 10 ms), capped at ``--cap`` seconds; and how long the rounds took, over at least
   five rounds (within the cap) with A's burst still pending.

Run: .venv/bin/python bench/fairness_bench.py [--replicas 10000] [--cap 120] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 8


def scenario(replicas: int, cap: float, interval: float) -> dict[str, Any]:
    """One run of the scenario with whatever ``archipel`` is first on ``sys.path``."""
    import archipel
    from archipel.backends import FakeBackend
    from archipel.catalog import load_snapshot
    from archipel.controlplane import Reconciler, Site, SitePlacer, SiteSpec, Store
    from archipel.core import parse_workload
    from archipel.policy import default_policy

    specs = [
        SiteSpec(
            name=name,
            backend="local",
            provider=provider,
            region=region,
            country=country,
            accelerators="cpu:1",
            slots=SLOTS,
            price_per_hour=price,
        )
        for name, provider, region, country, price in (
            ("paris", "scaleway", "fr-par", "FR", 1),
            ("frankfurt", "stackit", "eu01", "DE", 2),
        )
    ]
    burst = parse_workload(
        {
            "name": "a-burst",
            "kind": "inference",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "internal"},
            "run": {"command": ["fake-exit", "0"]},
            "serve": {"model": "a-model", "port": 9000},
            "replicas": replicas,
        }
    )
    small = parse_workload(
        {
            "name": "b-small",
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "internal"},
            "run": {"command": ["sleep", "600"]},
        }
    )
    home = Path(tempfile.mkdtemp(prefix="archipel-fairness-"))
    store = Store(f"sqlite:///{home / 'state.db'}")
    store.migrate()
    sites = {s.name: Site(s, FakeBackend(s.name)) for s in specs}
    reconciler = Reconciler(
        store, sites, SitePlacer(specs, load_snapshot(), default_policy()), home / "ck"
    )
    t = time.perf_counter()
    store.submit_group("tenant-a", burst)
    submit_s = time.perf_counter() - t

    started = threading.Event()
    stop = threading.Event()
    rounds: list[float] = []

    def loop() -> None:
        while not stop.is_set():
            started.set()
            t0 = time.perf_counter()
            reconciler.step()
            rounds.append(time.perf_counter() - t0)
            stop.wait(interval)

    threading.Thread(target=loop, daemon=True).start()
    started.wait()
    b_submitted = time.perf_counter()
    b = store.submit("tenant-b", small)
    tts: float | None = None
    while time.perf_counter() - b_submitted < cap:
        attempts = store.attempts(b.id)
        if attempts and attempts[0].backend_id is not None:
            tts = time.perf_counter() - b_submitted
            break
        time.sleep(0.01)
    waited = time.perf_counter() - b_submitted
    while len(rounds) < 5 and time.perf_counter() - b_submitted < cap:
        time.sleep(0.05)  # a few more rounds under the burst, for their durations
    done_rounds = list(rounds)
    current = None if done_rounds else time.perf_counter() - b_submitted  # first round going on
    a_left = sum(
        1 for r in store.runs(tenant="tenant-a", limit=replicas) if r.state.value == "pending"
    )
    stop.set()
    return {
        "archipel": str(Path(archipel.__file__).parents[1]),
        "replicas": replicas,
        "slots": SLOTS * len(specs),
        "interval_s": interval,
        "submit_group_s": submit_s,
        "b_time_to_start_s": tts,
        "b_waited_s": waited,
        "rounds_done": len(done_rounds),
        "round_max_s": max(done_rounds) if done_rounds else current,
        "round_median_s": statistics.median(done_rounds) if done_rounds else None,
        "first_round_s": done_rounds[0] if done_rounds else current,
        "a_pending_at_end": a_left,
    }


def export(ref: str) -> Path:
    """The ``src`` tree of commit ``ref``, written to a temporary folder."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="archipel-baseline-"))
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def run_in(src: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--scenario",
            "--replicas",
            str(args.replicas),
            "--cap",
            str(args.cap),
            "--interval",
            str(args.interval),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=args.cap + 600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def describe(label: str, r: dict[str, Any], cap: float) -> str:
    tts = r["b_time_to_start_s"]
    start = f"{tts:.2f} s" if tts is not None else f"not started after {r['b_waited_s']:.0f} s"
    rounds = (
        f"{r['rounds_done']} rounds, longest {r['round_max_s']:.2f} s, median "
        f"{r['round_median_s']:.2f} s"
        if r["rounds_done"]
        else f"the first round still running after {r['round_max_s']:.0f} s"
    )
    return (
        f"{label}: B's time to start {start}; {rounds}; {r['a_pending_at_end']:,} of A's "
        f"{r['replicas']:,} replicas still pending (cap {cap:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=10_000)
    parser.add_argument("--cap", type=float, default=120.0, help="seconds B may wait at most")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--baseline", help="commit to compare with (default: merge-base with main)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--scenario", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.replicas, args.cap, args.interval)), flush=True)
        os._exit(0)  # the reconciler thread may be mid-round: do not wait for it

    results = {"this tree": run_in(ROOT / "src", args)}
    print(describe("this tree", results["this tree"], args.cap), flush=True)
    if not args.no_baseline:
        ref = (
            args.baseline
            or subprocess.run(
                ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
        results[f"baseline {ref[:7]}"] = run_in(export(ref), args)
        print(describe(f"baseline {ref[:7]}", results[f"baseline {ref[:7]}"], args.cap))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
