"""Spread benchmark: how long one reconcile round takes to place replicas of a spread service.

One service of N replicas (``spread: {min_providers: 2, max_share_per_provider: 0.5}``)
is submitted on a SQLite store with three sites on the in-memory fake backend; the
first round places ``--max-runs-per-round`` (100) of its replicas, each under the
spread rule, which needs where its siblings are. Timed: that first round, on this
tree and on a baseline commit, each in a fresh process with that commit's ``src``
first on ``sys.path``.

    .venv/bin/python bench/spread_round_bench.py --replicas 3000 --baseline 2a3788f
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def scenario(replicas: int) -> dict[str, Any]:
    """One first round with whatever ``archipel`` is first on ``sys.path``."""
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
            slots=100_000,
            price_per_hour=price,
        )
        for name, provider, region, country, price in (
            ("paris", "scaleway", "fr-par", "FR", 1),
            ("frankfurt", "stackit", "eu01", "DE", 2),
            ("gravelines", "ovhcloud", "GRA", "FR", 3),
        )
    ]
    service = parse_workload(
        {
            "name": "svc",
            "kind": "inference",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "internal"},
            "run": {"command": ["fake-exit", "0"]},
            "serve": {"model": "m", "port": 9000},
            "replicas": replicas,
            "spread": {"min_providers": 2, "max_share_per_provider": 0.5},
        }
    )
    home = Path(tempfile.mkdtemp(prefix="archipel-spread-"))
    store = Store(f"sqlite:///{home / 'state.db'}")
    store.migrate()
    sites = {s.name: Site(s, FakeBackend(s.name)) for s in specs}
    reconciler = Reconciler(
        store, sites, SitePlacer(specs, load_snapshot(), default_policy()), home / "ck"
    )
    store.submit_group("tenant-a", service)
    started = time.perf_counter()
    report = reconciler.step()
    seconds = time.perf_counter() - started
    return {"replicas": replicas, "first_round_s": seconds, "transitions": report.transitions}


def export(ref: str) -> Path:
    """The ``src`` tree of commit ``ref``, written to a temporary folder."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="archipel-baseline-"))
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def run_in(src: Path, replicas: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--scenario", "--replicas", str(replicas)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3000)
    parser.add_argument("--baseline", help="commit to compare with (default: none)")
    parser.add_argument("--scenario", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.replicas)))
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rows = [("this tree", run_in(ROOT / "src", args.replicas))]
    if args.baseline:
        rows.append((args.baseline, run_in(export(args.baseline), args.replicas)))
    for label, r in rows:
        print(
            f"{label}: first round {r['first_round_s']:.2f} s, {r['transitions']} transitions, "
            f"a service of {r['replicas']:,} spread replicas"
        )


if __name__ == "__main__":
    main()
