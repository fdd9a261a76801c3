"""Forecast back-test: the ledger's trend against two naive baselines, on the same histories.

A rolling-origin back-test (archipel.ledger.backtest): at each origin from the
6th period on, each method forecasts the cumulative spend at the end of the
series (the term end) and ``--ahead`` periods on, and is scored against what
was spent: mean absolute error (MAE), mean absolute percentage error (MAPE)
and, for the trend, how often its 80% interval held the actual (coverage).
Baselines: ``last value`` (last period's spend carried forward) and ``linear
burn`` (the average spend per period to date carried forward).

Histories:

- synthetic (seeded): 60 months of spend with growth (2% a month), a yearly
  season (+-12%), a step change (x1.35 from month 30, a new cluster) and
  lognormal noise (sigma 0.08); the figures are averaged over ``--seeds`` seeds;
- real, when /work/shared/data/traces is there (``--traces DIR``): the Alibaba
  GPU pod trace (openb, days 0-140) as weekly GPU-hours, and the Alibaba DLRM
  serving trace (31 days) as daily GPU-hours of its GPU instances, both priced
  at a nominal USD 2 per GPU-hour (a constant price: the errors are those of
  the GPU-hours). Their periods are weeks and days, not months.

Run: .venv/bin/python bench/forecast_bench.py [--seeds 20] [--ahead 6] [--traces DIR] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from archipel.ledger import Score, backtest

PRICE = Decimal(2)  # USD per GPU-hour, nominal
CENT = Decimal("0.01")
TRACES = Path("/work/shared/data/traces")


def synthetic(seed: int, months: int = 60) -> list[Decimal]:
    """Monthly spend in USD: growth, a yearly season, a step change and noise."""
    rng = random.Random(seed)
    out = []
    for t in range(months):
        level = 400_000 * 1.02**t
        season = 1 + 0.12 * math.sin(2 * math.pi * (t % 12) / 12)
        step = 1.35 if t >= 30 else 1.0
        noise = math.exp(rng.gauss(0, 0.08))
        out.append(Decimal(str(level * season * step * noise)).quantize(CENT))
    return out


def _spread(hours: dict[int, Decimal], start: int, end: int, gpus: Decimal, period: int) -> None:
    """Add ``gpus`` GPU-hours per hour of ``[start, end)`` seconds to each period it overlaps."""
    t = start
    while t < end:
        k = t // period
        upto = min(end, (k + 1) * period)
        hours[k] = hours.get(k, Decimal(0)) + gpus * Decimal(upto - t) / 3600
        t = upto


def openb_weekly(folder: Path) -> list[Decimal]:
    """The openb pods' GPU-hours per week of days 0-140, priced."""
    window = 140 * 86_400
    week = 7 * 86_400
    hours: dict[int, Decimal] = {}
    with (folder / "openb_pod_list_default_day000-140.csv").open() as f:
        for row in csv.DictReader(f):
            if not row["scheduled_time"] or int(row["num_gpu"]) == 0:
                continue
            gpus = Decimal(int(row["num_gpu"]))
            if gpus == 1 and row["gpu_milli"]:
                gpus = Decimal(int(row["gpu_milli"])) / 1000
            start = int(row["scheduled_time"])
            end = min(int(row["deletion_time"] or window), window)
            _spread(hours, start, end, gpus, week)
    return [(hours.get(k, Decimal(0)) * PRICE).quantize(CENT) for k in range(window // week)]


def dlrm_daily(folder: Path) -> list[Decimal]:
    """The DLRM trace's GPU instances: GPU-hours per day of its 31 days, priced."""
    day = 86_400
    hours: dict[int, Decimal] = {}
    days = 31
    with (folder / "disaggregated_DLRM_trace.csv").open() as f:
        for row in csv.DictReader(f):
            if not row["gpu_request"] or Decimal(row["gpu_request"]) <= 0:
                continue
            start = int(float(row["creation_time"] or 0))
            end = min(int(float(row["deletion_time"] or days * day)), days * day)
            _spread(hours, start, end, Decimal(row["gpu_request"]), day)
    return [(hours.get(k, Decimal(0)) * PRICE).quantize(CENT) for k in range(days)]


def scores(series: Sequence[Decimal], ahead: int | None) -> list[Score]:
    return backtest(series, ahead=ahead)


def averaged(runs: list[list[Score]]) -> list[dict[str, Any]]:
    out = []
    for i, first in enumerate(runs[0]):
        found = [r[i] for r in runs]
        coverage = [s.coverage for s in found if s.coverage is not None]
        out.append(
            {
                "method": first.method,
                "origins": sum(s.origins for s in found),
                "mae": float(sum(s.mae for s in found) / len(found)),
                "mape": float(sum(s.mape for s in found) / len(found)),
                "coverage": float(sum(coverage) / len(coverage)) if coverage else None,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="synthetic histories to average")
    parser.add_argument("--ahead", type=int, default=6, help="periods ahead for the 2nd target")
    parser.add_argument("--traces", type=Path, default=TRACES, help="the shared traces folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    histories: list[tuple[str, str, list[list[Decimal]]]] = [
        (
            f"synthetic, 60 months, {args.seeds} seeds",
            "month",
            [synthetic(seed) for seed in range(args.seeds)],
        )
    ]
    openb = args.traces / "alibaba_gpu_v2023_openb"
    if openb.is_dir():
        histories.append(("Alibaba openb GPU pods, 20 weeks", "week", [openb_weekly(openb)]))
    dlrm = args.traces / "alibaba_gpu_v2025_dlrm"
    if dlrm.is_dir():
        histories.append(("Alibaba DLRM GPU serving, 31 days", "day", [dlrm_daily(dlrm)]))

    results = []
    for name, unit, series in histories:
        for target, ahead in (("term end", None), (f"{args.ahead} {unit}s ahead", args.ahead)):
            results.append(
                {
                    "history": name,
                    "target": target,
                    "scores": averaged([scores(s, ahead) for s in series]),
                }
            )
    doc = {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": results,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{doc['date']}  {doc['machine']}  Python {doc['python']}")
    for r in results:
        print(f"\n{r['history']}: cumulative position at {r['target']}")
        print(f"  {'method':<12} {'origins':>7} {'MAE':>16} {'MAPE %':>8} {'80% coverage':>13}")
        for s in r["scores"]:
            coverage = "-" if s["coverage"] is None else f"{s['coverage']:.2f}"
            print(
                f"  {s['method']:<12} {s['origins']:>7} {s['mae']:>16,.2f} {s['mape']:>8.2f} "
                f"{coverage:>13}"
            )


if __name__ == "__main__":
    main()
