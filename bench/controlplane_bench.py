"""Control plane benchmark: submissions over HTTP, reconcile rounds, recovery time.

Prints, in one run, against the targets of the control-plane issue:
- workload submissions per second through the HTTP API of a real
  `archipel server` on PostgreSQL, placement included (a submission is checked
  against every declared site by the placement engine before it is stored),
  with the client concurrency, p50 and p99 (targets: >= 300/s, p99 <= 50 ms);
- one reconcile round over 10,000 active runs on the in-memory fake backend,
  on SQLite and on PostgreSQL (target: <= 1 s);
- recovery time on local and Slurm sites: from the failure being observable
  (site down, processes killed) to the replacement attempt launched on the
  other site, with the server's default 1 s reconcile interval (target <= 5 s).

Run: .venv/bin/python bench/controlplane_bench.py   (PostgreSQL at 127.0.0.1:5432,
trust auth; Slurm started with scripts/slurm/up.sh for the Slurm figure)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from archipel.backends import Backend, FakeBackend, LocalBackend, SlurmBackend
from archipel.catalog import load_snapshot
from archipel.controlplane import Reconciler, Site, SitePlacer, SiteSpec, Store
from archipel.controlplane._models import AttemptRow, RunRow
from archipel.core import parse_workload
from archipel.policy import default_policy

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("ARCHIPEL_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
ARCHIPEL = str(Path(sys.executable).with_name("archipel"))
SPEC: dict[str, Any] = {
    "name": "bench",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "health"},
    "run": {"command": ["true"]},
}
SITES = [
    SiteSpec(
        name="paris",
        backend="local",
        provider="scaleway",
        region="fr-par",
        country="FR",
        accelerators="cpu:1",
        slots=100_000,
        price_per_hour=1,
    ),
    SiteSpec(
        name="frankfurt",
        backend="local",
        provider="stackit",
        region="eu01",
        country="DE",
        accelerators="cpu:1",
        slots=100_000,
        price_per_hour=2,
    ),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def new_pg_db() -> tuple[str, sa.Engine]:
    name = f"archipel_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return f"{PG}/{name}", admin


def drop_pg_db(url: str, admin: sa.Engine) -> None:
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


# -- submissions over HTTP ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, token: str, total: int, concurrency: int) -> list[float]:
    """``total`` submissions from ``concurrency`` keep-alive connections (aiohttp client)."""
    import aiohttp

    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(SPEC).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                t = time.perf_counter()
                async with session.post("/v1/runs", data=body) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"submission failed: {r.status}")
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def bench_submissions(total: int, concurrency: int, replicas: int = 1) -> dict[str, Any]:
    """``replicas`` API servers on one PostgreSQL database; the client's connections are
    spread evenly over them (as a load balancer would)."""
    url, admin = new_pg_db()
    home = Path(tempfile.mkdtemp(prefix="archipel-bench-"))
    env = {**os.environ, "ARCHIPEL_DATA_DIR": str(home)}
    ports = [free_port() for _ in range(replicas)]
    servers = [
        subprocess.Popen(
            [
                ARCHIPEL,
                "server",
                "--db",
                url,
                "--sites",
                str(ROOT / "examples/controlplane/sites.yaml"),
                "--port",
                str(port),
                "--interval",
                "3600",
                "--max-active-runs",  # every submission stays pending: lift the quota
                "1000000",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for port in ports
    ]
    try:
        for port in ports:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
        token = (home / "token").read_text().strip()
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        share = concurrency // replicas

        async def all_replicas(n: int) -> list[float]:
            parts = await asyncio.gather(*(load(b, token, n // replicas, share) for b in bases))
            return [x for part in parts for x in part]

        asyncio.run(all_replicas(200))  # warm-up
        started = time.perf_counter()
        latencies = asyncio.run(all_replicas(total))
        elapsed = time.perf_counter() - started
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        drop_pg_db(url, admin)
    return {
        "total": len(latencies),
        "concurrency": concurrency,
        "replicas": replicas,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


# -- a reconcile round over many active runs ----------------------------------------


def bench_reconcile(url: str, n: int) -> dict[str, Any]:
    store = Store(url)
    store.migrate()
    fakes = {s.name: FakeBackend(s.name) for s in SITES}
    workload = parse_workload(SPEC)
    spec_json = workload.model_dump_json(by_alias=True)
    now = datetime.now()
    runs, attempts = [], []
    for i in range(n):
        site = SITES[i % 2].name
        run_id = f"r-bench{i:07d}"
        attempt_id = f"{run_id}-a1"
        runs.append(
            {
                "id": run_id,
                "tenant": "bench",
                "name": "bench",
                "spec": spec_json,
                "state": "running",
                "version": 4,
                "restarts": 0,
                "max_restarts": 3,
                "blocked_sites": "[]",
                "site": site,
                "attempt_id": attempt_id,
                "message": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        attempts.append(
            {
                "id": attempt_id,
                "run_id": run_id,
                "number": 1,
                "site": site,
                "backend_id": None,
                "state": "running",
                "exit_code": None,
                "reason": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        fakes[site].launch(
            __import__("archipel.backends", fromlist=["LaunchRequest"]).LaunchRequest(
                attempt_id, ["true"]
            )
        )
    with store.engine.begin() as c:
        c.execute(sa.insert(RunRow), runs)
        c.execute(sa.insert(AttemptRow), attempts)
    sites = {s.name: Site(s, fakes[s.name]) for s in SITES}
    reconciler = Reconciler(
        store, sites, SitePlacer(SITES, load_snapshot(), default_policy()), Path(tempfile.mkdtemp())
    )
    rounds = []
    for _ in range(4):
        report = reconciler.step()
        rounds.append(report.seconds)
        assert report.observed == n
        assert report.transitions == 0
    store.close()
    return {"runs": n, "first_s": rounds[0], "steady_s": statistics.median(rounds[1:])}


# -- recovery ----------------------------------------------------------------------


def bench_recovery(kind: str, repeats: int, interval: float) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        home = Path(tempfile.mkdtemp(prefix="archipel-recovery-"))
        store = Store(f"sqlite:///{home / 'state.db'}")
        store.migrate()
        backends: dict[str, Backend]
        if kind == "local":
            specs = SITES
            backends = {s.name: LocalBackend(s.name, home / s.name) for s in specs}
        else:
            conf = (
                Path(os.environ.get("ARCHIPEL_SLURM_DIR", "/var/lib/archipel-slurm"))
                / "etc"
                / "slurm.conf"
            )
            specs = [
                s.model_copy(update={"backend": "slurm", "partition": p})
                for s, p in zip(SITES, ["eu-fr", "eu-de"], strict=True)
            ]
            backends = {
                s.name: SlurmBackend(
                    s.name,
                    s.partition or "",
                    home / s.name,
                    slurm_conf=conf,
                    sbatch_args=("--time=3",),
                )
                for s in specs
            }
        sites = {s.name: Site(s, backends[s.name]) for s in specs}
        reconciler = Reconciler(
            store, sites, SitePlacer(specs, load_snapshot(), default_policy()), home / "ck"
        )
        run = store.submit("bench", parse_workload({**SPEC, "run": {"command": ["sleep", "60"]}}))
        stop = threading.Event()

        def loop(r: Reconciler = reconciler, done: threading.Event = stop) -> None:
            while not done.is_set():
                r.step()
                done.wait(interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while store.get(run.id).state.value != "running":  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    raise RuntimeError("the run never started")
                time.sleep(0.02)
            first = backends["paris"]
            failed_at = time.monotonic()
            if isinstance(first, LocalBackend):
                first.down("bench: site lost")
                first.kill_all()
            else:
                assert isinstance(first, SlurmBackend)
                first.drain()
            while True:
                attempts = store.attempts(run.id)
                if len(attempts) >= 2 and attempts[1].backend_id is not None:
                    times.append(time.monotonic() - failed_at)
                    break
                if time.monotonic() - failed_at > 60:
                    raise RuntimeError("no recovery within 60 s")
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(10)
            for b in backends.values():
                if isinstance(b, SlurmBackend):
                    b.resume()
                    for a in store.attempts(run.id):
                        b.cancel(a.id)
                elif isinstance(b, LocalBackend):
                    b.kill_all()
            store.close()
    return {
        "kind": kind,
        "repeats": repeats,
        "interval_s": interval,
        "median_s": statistics.median(times),
        "max_s": max(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--no-slurm", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}

    for concurrency, replicas in ((8, 1), (16, 1), (16, 2)):
        s = bench_submissions(args.submissions, concurrency, replicas)
        results[f"submissions_c{concurrency}_r{replicas}"] = s
        ok = s["rps"] >= 300 and s["p99_ms"] <= 50
        print(
            f"submissions over HTTP, PostgreSQL, placement included, {replicas} API "
            f"replica(s), {concurrency} concurrent clients, {s['total']} requests: "
            f"{s['rps']:.0f}/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms  "
            f"(target >= 300/s, p99 <= 50 ms: {'PASS' if ok else 'FAIL'})"
        )

    with tempfile.TemporaryDirectory() as d:
        r = bench_reconcile(f"sqlite:///{d}/state.db", args.runs)
    results["reconcile_sqlite"] = r
    print(
        f"reconcile round, {r['runs']:,} active runs, fake backend, SQLite: first "
        f"{r['first_s']:.3f} s, steady {r['steady_s']:.3f} s  "
        f"(target <= 1 s: {'PASS' if r['steady_s'] <= 1 else 'FAIL'})"
    )
    url, admin = new_pg_db()
    try:
        r = bench_reconcile(url, args.runs)
    finally:
        drop_pg_db(url, admin)
    results["reconcile_postgresql"] = r
    print(
        f"reconcile round, {r['runs']:,} active runs, fake backend, PostgreSQL: first "
        f"{r['first_s']:.3f} s, steady {r['steady_s']:.3f} s  "
        f"(target <= 1 s: {'PASS' if r['steady_s'] <= 1 else 'FAIL'})"
    )

    kinds = ["local"] if args.no_slurm else ["local", "slurm"]
    for kind in kinds:
        rec = bench_recovery(kind, 5, 1.0)
        results[f"recovery_{kind}"] = rec
        print(
            f"recovery on {kind} sites (5 runs, 1 s reconcile interval): median "
            f"{rec['median_s']:.2f} s, max {rec['max_s']:.2f} s  "
            f"(target <= 5 s: {'PASS' if rec['max_s'] <= 5 else 'FAIL'})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
