"""A year of the example lab's usage, for the ledger: ``year.jsonl.gz``, seeded and exact.

    .venv/bin/python examples/ledger/generate.py                  # writes year.jsonl.gz here
    .venv/bin/python examples/ledger/generate.py --out DIR        # somewhere else
    .venv/bin/python examples/ledger/generate.py --shapes-from /work/shared/data/traces

What it does, in order:

1. **Plan.** ``archipel fleet plan examples/fleet/lab.yaml --json`` on the catalog
   snapshot shipped with Archipel (``ARCHIPEL_CATALOG`` pins it, so a refreshed
   catalog does not move the example): which workload runs on which provider,
   region, accelerator and how many nodes, at what hourly price.
2. **Shapes.** ``shapes.json`` beside this file holds a few aggregates of real
   public traces (see the README): the daily busy-GPU profile of Alibaba's
   GPU cluster trace (``alibaba_gpu_v2023_openb``, its 25 dense days), the
   per-minute request-rate swings and the token-count quantiles of Azure's LLM
   inference trace (``azure_llm_2023_conv``), and the token-count quantiles of
   Moonshot's long-context trace (``mooncake_kimi_2025_conversation``).
   ``--shapes-from DIR`` derives it again from the trace files.
3. **The year** (2025-11-01, the start of the lab's contracts, to 2026-11-29), one
   row per day and placement or model replica, in the ledger's native entries
   format (docs/ledger.md): training and batch GPU-hours follow the busy-GPU
   profile, grow through the year and run in cycles of each workload's
   ``duration_hours``; serving replicas run around the clock; the gateway's
   tokens per tenant and hosted model follow the LLM traces (daily sums, not
   requests) and grow. Three events: Azure eastus is down from 2026-04-13 to
   2026-04-20 (its runs fail over to OCI and Hyperstack, the gateway's
   llama-3.1-405b traffic to AWS); OCI cuts its A100 price by 20% from
   2026-06-01; health traffic jumps in October 2026.

Every GPU-hour is a whole number, every cost is the hourly price per GPU
times the GPU-hours (or the price per million tokens times the tokens),
quantized to cents, as an exact decimal string. Nothing depends on the clock,
the machine or a float function from the C library: randomness is
``random.Random(SEED)`` with additions, multiplications and ``round``, so the
output is the same bytes every time (tests/examples/test_ledger_example.py
checks it).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLEET = ROOT / "examples" / "fleet" / "lab.yaml"
SHAPES = HERE / "shapes.json"
OUT = "year.jsonl.gz"
SEED = 20251101
FIRST = date(2025, 11, 1)
END = date(2026, 11, 30)  # exclusive: the example's "today" (--today 2026-11-30)
CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)

OUTAGE = (date(2026, 4, 13), date(2026, 4, 20))  # Azure eastus, end exclusive
PRICE_CUT = date(2026, 6, 1)  # OCI A100: -20%
PRICE_CUT_RATE = Decimal("0.80")
HEALTH_JUMP = date(2026, 10, 1)  # a second hospital joins the health assistant

#: workload -> (tenant, project): who is charged for it
OWNERS = {
    "pretrain": ("research", "frontier"),
    "finetune-personal": ("research", "personalization"),
    "eval-confidential": ("safety", "evals"),
    "chat-serving": ("product", "assistant"),
    "clinical-notes-batch": ("health", "clinical-notes"),
    "health-assistant": ("health", "health-assistant"),
    "sovereign-rag": ("public-sector", "sovereign-rag"),
}


@dataclass(frozen=True)
class Replica:
    """A hosted model the gateway routes to, priced per million tokens."""

    model: str
    provider: str
    region: str
    country: str
    currency: str
    input_per_million: Decimal
    output_per_million: Decimal


#: the gateway's hosted models (prices are illustrative, per million tokens)
REPLICAS = {
    "gpt-4o/azure-eastus": Replica(
        "gpt-4o", "azure", "eastus", "US", "USD", Decimal("2.50"), Decimal("10.00")
    ),
    "llama-3.1-405b/azure-eastus": Replica(
        "llama-3.1-405b", "azure", "eastus", "US", "USD", Decimal("5.33"), Decimal("16.00")
    ),
    "llama-3.1-405b/aws-use1": Replica(
        "llama-3.1-405b", "aws", "us-east-1", "US", "USD", Decimal("2.40"), Decimal("2.40")
    ),
    "mistral-large/scaleway-par": Replica(
        "mistral-large", "scaleway", "fr-par", "FR", "EUR", Decimal("2.00"), Decimal("6.00")
    ),
    "mistral-large/ovh-gra": Replica(
        "mistral-large", "ovhcloud", "GRA11", "FR", "EUR", Decimal("1.80"), Decimal("5.40")
    ),
}


@dataclass(frozen=True)
class Traffic:
    """One tenant's daily requests to one model over its replicas (weights), shaped by a trace."""

    tenant: str
    project: str
    data_class: str
    trace: str  # "azure" (chat) or "mooncake" (long context)
    requests: int  # per day at the start of the year
    growth: Decimal  # the factor reached at the end of the year
    replicas: tuple[tuple[str, int], ...]


TRAFFIC = (
    Traffic("product", "assistant", "internal", "azure", 120_000, Decimal(3),
            (("gpt-4o/azure-eastus", 1),)),
    Traffic("product", "assistant", "internal", "azure", 40_000, Decimal(2),
            (("llama-3.1-405b/azure-eastus", 1), ("llama-3.1-405b/aws-use1", 1))),
    Traffic("research", "frontier", "public", "mooncake", 3_000, Decimal("1.5"),
            (("llama-3.1-405b/aws-use1", 1),)),
    Traffic("health", "health-assistant", "health", "mooncake", 2_500, Decimal(2),
            (("mistral-large/scaleway-par", 3), ("mistral-large/ovh-gra", 1))),
    Traffic("public-sector", "sovereign-rag", "sovereign", "mooncake", 800, Decimal("1.5"),
            (("mistral-large/ovh-gra", 1),)),
)  # fmt: skip


# -- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    workload: str
    kind: str
    data_class: str
    provider: str
    region: str
    country: str
    accelerator: str
    gpus: int  # per unit: nodes x accelerators per node
    units: int  # replicas placed here
    per_gpu_hour: Decimal  # the provider's own price and currency
    currency: str
    duration_hours: int | None


def plan() -> list[Placement]:
    """The lab's fleet plan, by Archipel's engine, on the shipped catalog."""
    from archipel.catalog import SNAPSHOT_FILE
    from archipel.cli._config import load_fleet

    env = {**os.environ, "ARCHIPEL_CATALOG": str(SNAPSHOT_FILE)}
    archipel = Path(sys.executable).with_name("archipel")
    out = subprocess.run(
        [str(archipel), "fleet", "plan", str(FLEET), "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    spec = {w.name: w for w in load_fleet(FLEET).workloads}
    placements = []
    for assignment in doc["assignments"]:
        workload = spec[assignment["workload"]]
        for p in assignment["placements"]:
            gpus = int(p["accelerator_count"]) * int(p["nodes"])
            per_node = Decimal(p["offer_price_per_node_hour"])
            placements.append(
                Placement(
                    workload=workload.name,
                    kind=workload.kind,
                    data_class=workload.data.class_,
                    provider=p["provider"],
                    region=p["region"],
                    country=p["country"],
                    accelerator=p["accelerator"],
                    gpus=gpus,
                    units=int(p["units"]),
                    per_gpu_hour=per_node / int(p["accelerator_count"]),
                    currency=p["offer_currency"],
                    duration_hours=workload.duration_hours,
                )
            )
    return placements


# -- the shapes, from the real traces ------------------------------------------------


def derive_shapes(traces: Path) -> dict[str, Any]:
    """The few aggregates of the public traces the year is shaped by (see the README)."""
    return {
        "openb_daily_busy_gpus": _openb_profile(
            traces / "alibaba_gpu_v2023_openb" / "openb_pod_list_default_day000-140.csv"
        ),
        "azure_minute_rate": _azure_rate(
            traces / "azure_llm_2023_conv" / "AzureLLMInferenceTrace_conv.csv"
        ),
        "azure_tokens": _azure_tokens(
            traces / "azure_llm_2023_conv" / "AzureLLMInferenceTrace_conv.csv"
        ),
        "mooncake_tokens": _mooncake_tokens(
            traces / "mooncake_kimi_2025_conversation" / "conversation_trace.jsonl"
        ),
    }


def _openb_profile(path: Path) -> list[float]:
    """Busy GPUs per trace day over its dense days (115-139), as a share of the busiest."""
    first, days = 115, 25
    busy = [0] * days  # GPU-milli-seconds
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if not row["scheduled_time"] or not row["deletion_time"]:
                continue
            milli = int(row["num_gpu"]) * 1000
            if int(row["num_gpu"]) == 1 and row["gpu_milli"]:
                milli = int(row["gpu_milli"])
            start, end = int(row["scheduled_time"]), int(row["deletion_time"])
            for d in range(days):
                lo, hi = (first + d) * 86_400, (first + d + 1) * 86_400
                overlap = min(end, hi) - max(start, lo)
                if overlap > 0:
                    busy[d] += milli * overlap
    top = max(busy)
    return [round(b / top, 4) for b in busy]


def _azure_rate(path: Path) -> list[float]:
    """Requests per minute of the Azure chat trace, as a ratio to its mean (58 whole minutes)."""
    with path.open(newline="") as fh:
        stamps = [row["TIMESTAMP"] for row in csv.DictReader(fh)]
    start = datetime.fromisoformat(stamps[0][:26])
    counts: dict[int, int] = {}
    for stamp in stamps:
        minute = int((datetime.fromisoformat(stamp[:26]) - start).total_seconds() // 60)
        counts[minute] = counts.get(minute, 0) + 1
    whole = [counts.get(m, 0) for m in range(58)]
    mean = sum(whole) / len(whole)
    return [round(c / mean, 3) for c in whole]


def _quantiles(values: list[int], n: int = 40) -> list[int]:
    values = sorted(values)
    return [values[min(len(values) - 1, (len(values) * k) // n)] for k in range(n)]


def _azure_tokens(path: Path) -> dict[str, list[int]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        "input": _quantiles([int(r["ContextTokens"]) for r in rows]),
        "output": _quantiles([int(r["GeneratedTokens"]) for r in rows]),
    }


def _mooncake_tokens(path: Path) -> dict[str, list[int]]:
    inputs, outputs = [], []
    with path.open() as fh:
        for line in fh:
            doc = json.loads(line)
            inputs.append(int(doc["input_length"]))
            outputs.append(int(doc["output_length"]))
    return {"input": _quantiles(inputs), "output": _quantiles(outputs)}


# -- the year ------------------------------------------------------------------------


def days() -> Iterator[date]:
    day = FIRST
    while day < END:
        yield day
        day += timedelta(days=1)


def _progress(day: date) -> float:
    """How far into the year ``day`` is, 0 to 1."""
    return (day - FIRST).days / (END - FIRST).days


def _stamp(day: date, plus: int = 0) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=plus)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cents(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def _entry(source: str, key: str, day: date, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "source": source, "key": key, "start": _stamp(day), "end": _stamp(day, 1),
        "tenant": None, "project": None, "workload": None, "model": None,
        "accelerator": None, "provider": None, "region": None, "country": None,
        "data_class": None, "status": None, "gpu_hours": "0", "input_tokens": 0,
        "output_tokens": 0, "cost": "0.00", "currency": "USD",
    }  # fmt: skip
    doc.update(fields)
    return doc


def _family(workload: str) -> str:
    for family in OWNERS:
        if workload == family or workload.startswith(family + "-"):
            return family
    raise ValueError(f"{workload}: no owner in OWNERS")


def _failover(p: Placement, by_workload: dict[str, list[Placement]]) -> Placement:
    """Where an Azure eastus placement runs during the outage: a sibling's placement
    elsewhere (OCI for pretraining, Hyperstack for serving, AWS for the evaluations)."""
    targets = {"pretrain": "pretrain-1", "chat-serving": "chat-serving-3",
               "eval-confidential": "eval-confidential-1"}  # fmt: skip
    for q in by_workload[targets[_family(p.workload)]]:
        if q.provider != "azure":
            return Placement(
                p.workload, p.kind, p.data_class, q.provider, q.region, q.country,
                q.accelerator, p.gpus, p.units, q.per_gpu_hour, q.currency, p.duration_hours,
            )  # fmt: skip
    raise ValueError(f"{p.workload}: no failover target")


def _price(p: Placement, day: date) -> Decimal:
    if p.provider == "oci" and p.accelerator == "A100-80GB" and day >= PRICE_CUT:
        return p.per_gpu_hour * PRICE_CUT_RATE
    return p.per_gpu_hour


def _duty(p: Placement, day: date, index: int, shapes: dict[str, Any]) -> float:
    """The share of the day ``p`` keeps its GPUs busy."""
    if p.kind == "inference":
        return 1.0  # replicas run around the clock
    profile: list[float] = shapes["openb_daily_busy_gpus"]
    busy = profile[((day - FIRST).days + 3 * index) % len(profile)]
    growth = 0.55 + 0.45 * _progress(day)  # the lab grows into its fleet
    hours = p.duration_hours or 24 * 30
    period = max(hours // 24 + 1, 30 if p.kind == "training" else 14)
    if (day - FIRST).days % period >= (hours + 23) // 24:
        return 0.0  # between two runs of this workload
    return min(1.0, growth * (0.35 + 0.65 * busy))


def run_entries(placements: list[Placement], shapes: dict[str, Any]) -> Iterator[dict[str, Any]]:
    by_workload: dict[str, list[Placement]] = {}
    for p in placements:
        by_workload.setdefault(p.workload, []).append(p)
    names = sorted(by_workload)
    for day in days():
        for index, name in enumerate(names):
            for p in by_workload[name]:
                here = p
                if p.provider == "azure" and p.region == "eastus" and OUTAGE[0] <= day < OUTAGE[1]:
                    here = _failover(p, by_workload)
                duty = _duty(p, day, index, shapes)
                gpu_hours = round(here.gpus * here.units * 24 * duty)
                if gpu_hours == 0:
                    continue
                tenant, project = OWNERS[_family(name)]
                moved = "" if here is p else "/failover"  # beside its siblings' own entry
                yield _entry(
                    "runs", f"{name}/{day.isoformat()}/{here.provider}-{here.region}{moved}", day,
                    tenant=tenant, project=project, workload=name,
                    accelerator=here.accelerator, provider=here.provider,
                    region=here.region, country=here.country, data_class=here.data_class,
                    gpu_hours=str(gpu_hours),
                    cost=_cents(_price(here, day) * gpu_hours), currency=here.currency,
                )  # fmt: skip


def _tokens(rng: random.Random, table: list[int], requests: int, draws: int = 64) -> int:
    """Tokens of ``requests`` requests whose sizes are drawn from the trace's quantiles."""
    sample = sum(table[rng.randrange(len(table))] for _ in range(draws))
    return sample * requests // draws


def gateway_entries(shapes: dict[str, Any]) -> Iterator[dict[str, Any]]:
    rng = random.Random(SEED)
    rate = shapes["azure_minute_rate"]
    for day in days():
        weekday = 0.8 if day.weekday() >= 5 else 1.0
        swing = rate[(day - FIRST).days % len(rate)]
        for t in TRAFFIC:
            growth = 1 + float(t.growth - 1) * _progress(day)
            if t.tenant == "health" and day >= HEALTH_JUMP:
                growth *= 1.8
            requests = round(t.requests * growth * weekday * (0.75 + 0.25 * swing))
            table = shapes[f"{t.trace}_tokens"]
            served = _spread(t, day)
            total = sum(weight for _, weight in served)
            for name, weight in served:
                replica = REPLICAS[name]
                n = requests * weight // total
                tokens_in = _tokens(rng, table["input"], n)
                tokens_out = _tokens(rng, table["output"], n)
                cost = (
                    replica.input_per_million * tokens_in + replica.output_per_million * tokens_out
                ) / MILLION
                yield _entry(
                    "gateway", f"{t.tenant}/{name}/{day.isoformat()}/200", day,
                    tenant=t.tenant, project=t.project, workload=name, model=replica.model,
                    provider=replica.provider, region=replica.region, country=replica.country,
                    data_class=t.data_class, status=200, input_tokens=tokens_in,
                    output_tokens=tokens_out, cost=_cents(cost), currency=replica.currency,
                )  # fmt: skip
            if _down(day) and any(REPLICAS[n].provider == "azure" for n, _ in t.replicas):
                # the first requests of the outage, before the breaker opened: failed, free
                failed = requests // 200
                yield _entry(
                    "gateway", f"{t.tenant}/{t.replicas[0][0]}/{day.isoformat()}/503", day,
                    tenant=t.tenant, project=t.project, model=REPLICAS[t.replicas[0][0]].model,
                    data_class=t.data_class, status=503,
                    input_tokens=_tokens(rng, table["input"], failed),
                )  # fmt: skip


def _down(day: date) -> bool:
    return OUTAGE[0] <= day < OUTAGE[1]


def _spread(t: Traffic, day: date) -> tuple[tuple[str, int], ...]:
    """The replicas that serve ``t`` on ``day``: Azure eastus's are skipped while it is down."""
    if not _down(day):
        return t.replicas
    up = tuple((n, w) for n, w in t.replicas if REPLICAS[n].provider != "azure")
    return up or t.replicas[:0]


def year(shapes: dict[str, Any]) -> bytes:
    """The year's entries as JSON lines, sorted by day, source and key."""
    entries = [*run_entries(plan(), shapes), *gateway_entries(shapes)]
    entries.sort(key=lambda e: (e["start"], e["source"], e["key"]))
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


def write_gzip(path: Path, data: bytes) -> None:
    """``data`` gzipped with no name and no time in the header (the same bytes each time)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as fh:
        fh.write(data)
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write year.jsonl.gz to")
    parser.add_argument("--shapes-from", type=Path, metavar="TRACES",
                        help="derive shapes.json again from this traces folder first")  # fmt: skip
    args = parser.parse_args(argv)
    if args.shapes_from is not None:
        shapes_doc = derive_shapes(args.shapes_from)
        SHAPES.write_text(json.dumps(shapes_doc, indent=1, sort_keys=True) + "\n")
    shapes = json.loads(SHAPES.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    data = year(shapes)
    write_gzip(args.out / OUT, data)
    lines = data.count(b"\n")
    print(f"{args.out / OUT}: {lines:,} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
