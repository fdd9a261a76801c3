"""Ledger benchmark: N gateway usage rows through the columnar path, fewer through the row path.

The issue's target is 10 million rows in at most 60 s on this machine. The
rows are written first, as the gateway writes them (one JSON line each, a
thousand tenants, seven models, three provider regions in EUR and USD, exact
decimal costs from per-token prices), by DuckDB so that 10 million lines take
seconds; that writing is not timed. Timed, in one run: the columnar ingest
(``ingest_columnar``: DuckDB parses and checks the lines, Parquet partitions)
of the N rows into a fresh ledger, the same file again (every row a
duplicate), chargeback totals by tenant over the result; and the row path
(``ingest_usage`` into ``ledger_entries``) on the first ``--row-rows`` of the
same lines, for comparison.

Run: .venv/bin/python bench/ledger_bench.py [--rows 10000000] [--row-rows 200000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb

from archipel.catalog import load_regions
from archipel.ledger import Dimension, Ledger, ingest_columnar, ingest_usage, totals

T = TypeVar("T")
TARGET_ROWS, TARGET_SECONDS = 10_000_000, 60.0


def write_rows(path: Path, rows: int) -> None:
    """``rows`` usage lines as the gateway writes them (same fields, same order)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""
        COPY (
          WITH r AS (
            SELECT n, [('scaleway', 'fr-par', 'EUR'), ('aws', 'us-east-1', 'USD'),
                       ('ovhcloud', 'GRA', 'EUR')][n % 3 + 1] AS place,
                   1 + hash(n, 1) % 3999 AS tin, 1 + hash(n, 2) % 799 AS tout
            FROM range({rows}) t(n))
          SELECT '{{"ts":' || round(1764547200.0 + n * 0.000143, 6)::VARCHAR
            || ',"request_id":"bench-' || n || '","tenant":"tenant-' || n % 1000
            || '","data_class":"' || ['public', 'internal', 'health'][n % 3 + 1]
            || '","model":"model-' || n % 7 || '","status":'
            || CASE WHEN n % 50 = 0 THEN 503 ELSE 200 END
            || ',"replica":"model-' || n % 7 || '/' || place[1] || '","provider":"' || place[1]
            || '","region":"' || place[2] || '","input_tokens":' || tin
            || ',"output_tokens":' || tout || ',"tokens_counted":false,"latency_ms":'
            || round(20 + (hash(n, 3) % 880000) / 1000.0, 3)::VARCHAR
            || ',"attempts":1,"cost":"'
            || rtrim(rtrim((CASE WHEN place[3] = 'EUR'
                 THEN tin * 0.00000059 + tout * 0.00000079
                 ELSE tin * 0.0000009 + tout * 0.0000012 END)::DECIMAL(18, 8)::VARCHAR, '0'), '.')
            || '","currency":"' || place[3] || '","stream":false}}' AS line
          FROM r ORDER BY n
        ) TO '{path}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')
        """
    )
    con.close()


def timed(label: str, fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall-clock and CPU seconds of ``fn`` (the CPU of this process, all its threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{label}: {elapsed:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return elapsed, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--row-rows", type=int, default=200_000)
    args = parser.parse_args()
    countries = load_regions()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        usage = folder / "usage.jsonl"
        t0 = time.perf_counter()
        write_rows(usage, args.rows)
        print(f"wrote {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        size = usage.stat().st_size
        load = os.getloadavg()[0]
        ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}")
        ledger.migrate()
        first, first_cpu, report = timed(
            "columnar ingest", lambda: ingest_columnar(ledger, usage, countries)
        )
        again, _, second = timed(
            "columnar ingest again, whole",
            lambda: ingest_columnar(ledger, usage, countries, whole=True),
        )
        summed, _, groups = timed("totals by tenant", lambda: totals(ledger, Dimension.tenant))
        ledger.close()
        small = folder / "small.jsonl"
        with usage.open("rb") as src, small.open("wb") as dst:
            for _ in range(args.row_rows):
                dst.write(src.readline())
        rows = Ledger(f"sqlite:///{folder / 'rows.db'}")
        rows.migrate()
        row_wall, row_cpu, row_report = timed(
            f"row path, {args.row_rows:,} rows", lambda: ingest_usage(rows, small, countries)
        )
        rows.close()
    rate = args.rows / first
    projected = TARGET_ROWS / rate
    print(f"rows: {args.rows:,} ({size / 2**20:,.0f} MiB of JSON lines), {report.added}")
    print(
        f"columnar first ingest: {rate:,.0f} rows/s wall ({args.rows / first_cpu:,.0f} per CPU s)"
    )
    print(f"columnar again (all duplicates): {args.rows / again:,.0f} rows/s ({second.added})")
    print(f"totals: {len(groups):,} groups in {summed:.2f} s")
    print(
        f"row path: {args.row_rows / row_wall:,.0f} rows/s wall "
        f"({args.row_rows / row_cpu:,.0f} per CPU s, {row_report.added})"
    )
    verdict = "MET" if projected <= TARGET_SECONDS else "NOT MET"
    print(
        f"target, {TARGET_ROWS:,} rows in <= {TARGET_SECONDS:.0f} s: {projected:.0f} s "
        f"({'measured' if args.rows == TARGET_ROWS else 'at the measured rate'}): {verdict}"
    )
    print(f"load average before the ingests: {load:.2f}")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )


if __name__ == "__main__":
    main()
