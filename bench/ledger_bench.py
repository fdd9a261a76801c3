"""Ledger benchmark: ingest N synthetic gateway usage rows, report rows per second.

The issue's target is 10 million rows in at most 60 s on this machine. The
rows are written first, as the gateway writes them (one JSON line each, a
thousand tenants, models and replicas in a few currencies, exact decimal costs),
and that writing is not timed. Timed: ``ingest_usage`` into a fresh ledger on
a SQLite file (or ``--db URL``), then ingesting the same file a second time
(every row a duplicate), then one ``totals`` by tenant.

Run: .venv/bin/python bench/ledger_bench.py [--rows 1000000] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from archipel.catalog import load_regions
from archipel.ledger import Dimension, Ledger, ingest_usage, totals

T = TypeVar("T")

PLACES = [("scaleway", "fr-par", "EUR"), ("aws", "us-east-1", "USD"), ("ovhcloud", "GRA", "EUR")]
PER_TOKEN = {
    "EUR": (Decimal("0.00000059"), Decimal("0.00000079")),
    "USD": (Decimal("0.0000009"), Decimal("0.0000012")),
}


def write_rows(path: Path, rows: int, seed: int = 20261201) -> None:
    rng = random.Random(seed)
    start = 1764547200.0
    with path.open("w") as f:
        for n in range(rows):
            provider, region, currency = PLACES[n % len(PLACES)]
            tin, tout = rng.randrange(1, 4000), rng.randrange(1, 800)
            pin, pout = PER_TOKEN[currency]
            doc = {
                "ts": round(start + n * 0.000143, 6),
                "request_id": f"bench-{n}",
                "tenant": f"tenant-{n % 1000}",
                "data_class": ("public", "internal", "health")[n % 3],
                "model": f"model-{n % 7}",
                "status": 200 if n % 50 else 503,
                "replica": f"model-{n % 7}/{provider}",
                "provider": provider,
                "region": region,
                "input_tokens": tin,
                "output_tokens": tout,
                "tokens_counted": False,
                "latency_ms": round(rng.uniform(20, 900), 3),
                "attempts": 1,
                "cost": format(tin * pin + tout * pout, "f"),
                "currency": currency,
                "stream": False,
            }
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")


def timed(label: str, fn: Callable[[], T]) -> tuple[float, T]:
    """Wall-clock seconds of ``fn``; the process's CPU seconds are printed beside them,
    since on a shared machine the wall clock also counts other programs' turns."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{label}: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLAlchemy URL of an empty database (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        usage = Path(folder) / "usage.jsonl"
        write_rows(usage, args.rows)
        size = usage.stat().st_size
        load = os.getloadavg()[0]
        ledger = Ledger(args.db or f"sqlite:///{Path(folder) / 'ledger.db'}")
        ledger.migrate()
        countries = load_regions()
        first, report = timed("ingest", lambda: ingest_usage(ledger, usage, countries))
        again, second = timed("ingest again", lambda: ingest_usage(ledger, usage, countries))
        summed, groups = timed("totals by tenant", lambda: totals(ledger, Dimension.tenant))
        ledger.close()
    print(f"rows: {args.rows:,} ({size / 2**20:.0f} MiB of JSON lines)")
    print(f"first ingest: {args.rows / first:,.0f} rows/s ({report.added})")
    print(f"second ingest: {args.rows / again:,.0f} rows/s ({second.added})")
    print(f"totals: {len(groups):,} groups in {summed:.2f} s")
    print(
        f"10M rows at the first ingest's rate: {10_000_000 / (args.rows / first):.0f} s "
        "(target <= 60 s)"
    )
    print(f"load average before the ingests: {load:.2f}")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )


if __name__ == "__main__":
    main()
