"""Parsers that turn each source file into normalised offer rows.

Every source is parsed by header name (column orders differ per cloud) and
every row is kept or dropped for a stated reason, counted in the
:class:`SourceReport`. Quirks handled here, one place each:

- GCP prices accelerators apart from their host machine type; an offer is the
  host plus its accelerators in the same zone (host + accelerators, as SkyPilot
  prices it). GPUs of the N1 family attach to the default ``n1-highmem-8``
  host; TPU VMs carry their whole price in the accelerator row.
- Vast's region is free text ``"City/State, CC, Continent"``; the country is the
  two-letter code, the continent ("EU" there means Europe, not the Union) is ignored.
- A row with an empty region (16 Seeweb rows, among them its only L4 and H100
  offers) is dropped and counted: nothing in the source says where it runs, so
  it could not be launched anywhere nor checked against a country rule.
  Placeholder regions (Hyperbolic's ``default``) are kept: their country is
  unknown, so they fail every country rule.
- GPU memory is per accelerator in whole GiB, rounded to the nearest: drivers
  report a little less than the nominal size (81,559 MiB for an 80 GiB H100
  PCIe), and the catalogs copy either figure.
- A spot price of exactly zero (Vast) means "no interruptible price", not free.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from archipel.core import MISSING, CatalogError, canonical_accelerator, parse_price


@dataclass(frozen=True, slots=True)
class OfferRow:
    """One normalised offer, before it goes into the columnar table."""

    provider: str
    region: str
    zone: str
    instance_type: str
    accelerator: str  # canonical name, "" for none
    accelerator_count: float
    gpu_memory_mib: int  # per accelerator, 0 = unknown
    vcpus: float | None
    memory_gib: float | None
    price: int  # nano-units, MISSING when not sold on demand
    spot_price: int
    currency: str
    source: str
    country: str | None = None  # set only when the source itself states it (Vast)


@dataclass
class SourceReport:
    """What a parser kept and what it dropped, by reason."""

    source: str
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def _read_csv(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read catalog source {path}: {exc}") from exc


def _float(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def whole_gib(mib: float) -> int:
    """``mib`` rounded to the nearest whole GiB, in MiB (0 stays 0: unknown)."""
    if mib <= 0:
        return 0
    return max(1, round(mib / 1024)) * 1024


def _gpu_memory_mib(info: str, count: float) -> int:
    """Per-accelerator memory from SkyPilot's dict-like ``GpuInfo`` string, in whole GiB."""
    return whole_gib(_stated_memory_mib(info, count))


def _stated_memory_mib(info: str, count: float) -> float:
    if not info.strip():
        return 0
    try:
        data = (
            json.loads(info)
            if info.lstrip().startswith('{"')
            else ast.literal_eval(info.replace("null", "None"))
        )
    except (ValueError, SyntaxError):
        return 0
    gpus = data.get("Gpus") or []
    if gpus and isinstance(gpus[0], dict):
        size = (gpus[0].get("MemoryInfo") or {}).get("SizeInMiB")
        if isinstance(size, int | float) and size > 0:
            return float(size)
    total = data.get("TotalGpuMemoryInMiB")
    if isinstance(total, int | float) and total > 0 and count >= 1:
        return float(total / count)
    return 0


def _prices(row: dict[str, str], where: str) -> tuple[int, int]:
    try:
        price = parse_price(row.get("Price") or "")
        spot = parse_price(row.get("SpotPrice") or "")
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    if spot == 0:
        spot = MISSING
    return price, spot


def parse_skypilot(
    provider: str, path: Path, source: str, currency: str = "USD"
) -> tuple[list[OfferRow], SourceReport]:
    """Parse one SkyPilot ``vms.csv`` (any cloud but GCP, which needs :func:`parse_gcp`).

    ``currency`` is the one the file's prices are in: the provider's billing currency.
    """
    report = SourceReport(source)
    rows: list[OfferRow] = []
    for n, raw in enumerate(_read_csv(path), start=2):
        price, spot = _prices(raw, f"{path}:{n}")
        if price == MISSING and spot == MISSING:
            report.dropped["no price at all"] += 1
            continue
        if not (raw.get("Region") or "").strip():
            report.dropped["no region (location unknown)"] += 1
            continue
        accel = canonical_accelerator(raw.get("AcceleratorName") or "")
        count = _float(raw.get("AcceleratorCount")) or 0.0
        if not accel:
            count = 0.0
        region = (raw.get("Region") or "").strip()
        country = None
        if provider == "vast":
            region, country = _vast_region(region)
        rows.append(
            OfferRow(
                provider=provider,
                region=region,
                zone=(raw.get("AvailabilityZone") or "").strip(),
                instance_type=raw["InstanceType"].strip(),
                accelerator=accel,
                accelerator_count=count,
                gpu_memory_mib=_gpu_memory_mib(raw.get("GpuInfo") or "", count),
                vcpus=_float(raw.get("vCPUs")),
                memory_gib=_float(raw.get("MemoryGiB")),
                price=price,
                spot_price=spot,
                currency=currency,
                source=source,
                country=country,
            )
        )
    report.kept = len(rows)
    return rows, report


_VAST_REGION = re.compile(r"^(?P<place>.*?),\s*(?P<cc>[A-Z]{2})\s*,\s*(?P<continent>[A-Z]{2})\s*$")


def _vast_region(text: str) -> tuple[str, str | None]:
    """``"Alberta, CA, NA"`` -> (``"CA-Alberta"``, ``"CA"``); ``", US, NA"`` -> ``("US", "US")``."""
    match = _VAST_REGION.match(text.strip())
    if match is None:
        return text.strip(), None
    cc, place = match["cc"], match["place"].strip()
    return (f"{cc}-{place}" if place else cc), cc


# GCP: which host machine type carries which accelerators (documented GCP machine families).
_GCP_HOSTS: dict[tuple[str, int], str] = {
    **{("A100", n): f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)},
    ("A100", 16): "a2-megagpu-16g",
    **{("A100-80GB", n): f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)},
    **{("H100", n): f"a3-highgpu-{n}g" for n in (1, 2, 4, 8)},
    ("H100-MEGA", 8): "a3-megagpu-8g",
    ("H200", 8): "a3-ultragpu-8g",
    ("B200", 8): "a4-highgpu-8g",
    ("L4", 1): "g2-standard-4",
    ("L4", 2): "g2-standard-24",
    ("L4", 4): "g2-standard-48",
    ("L4", 8): "g2-standard-96",
}
_GCP_N1_GPUS = frozenset({"T4", "P4", "P100", "V100"})
_GCP_N1_HOST = "n1-highmem-8"


def parse_gcp(path: Path, source: str) -> tuple[list[OfferRow], SourceReport]:
    """Parse GCP's catalog, pricing each accelerator with its host in the same zone."""
    report = SourceReport(source)
    raws = _read_csv(path)
    hosts: dict[tuple[str, str], dict[str, str]] = {}
    for raw in raws:
        if raw["InstanceType"].strip():
            hosts[(raw["InstanceType"].strip(), raw["AvailabilityZone"].strip())] = raw
    rows: list[OfferRow] = []
    for n, raw in enumerate(raws, start=2):
        name = (raw.get("AcceleratorName") or "").strip()
        instance = raw["InstanceType"].strip()
        zone = raw["AvailabilityZone"].strip()
        if instance and name:
            report.dropped["accelerator already in a host row"] += 1
            continue
        price, spot = _prices(raw, f"{path}:{n}")
        count = _float(raw.get("AcceleratorCount")) or 0.0
        vcpus, memory = _float(raw.get("vCPUs")), _float(raw.get("MemoryGiB"))
        if not name:  # a host or CPU machine type, sold on its own
            if price == MISSING and spot == MISSING:
                report.dropped["no price at all"] += 1
                continue
            accel, count = "", 0.0
        elif name.startswith("tpu-"):
            instance, accel = name, name
        else:
            host_type = _GCP_N1_HOST if name in _GCP_N1_GPUS else _GCP_HOSTS.get((name, int(count)))
            host = hosts.get((host_type, zone)) if host_type else None
            if host is None:
                report.dropped[f"no host machine type for {name} x{int(count)} in zone"] += 1
                continue
            host_price, host_spot = _prices(host, f"{path}: host {host_type}/{zone}")
            price = MISSING if MISSING in (price, host_price) else price + host_price
            spot = MISSING if MISSING in (spot, host_spot) else spot + host_spot
            if price == MISSING and spot == MISSING:
                report.dropped["no price at all"] += 1
                continue
            instance, accel = host_type or "", canonical_accelerator(name)
            vcpus, memory = _float(host.get("vCPUs")), _float(host.get("MemoryGiB"))
        rows.append(
            OfferRow(
                provider="gcp",
                region=raw["Region"].strip(),
                zone=zone,
                instance_type=instance,
                accelerator=accel,
                accelerator_count=count,
                gpu_memory_mib=_gpu_memory_mib(raw.get("GpuInfo") or "", count),
                vcpus=vcpus,
                memory_gib=memory,
                price=price,
                spot_price=spot,
                currency="USD",
                source=source,
            )
        )
    report.kept = len(rows)
    return rows, report


EXTRA_COLUMNS = (
    "provider,region,zone,instance_type,accelerator,accelerator_count,gpu_memory_gib,"
    "vcpus,memory_gib,price,spot_price,currency,price_unit,source,as_of"
).split(",")


def parse_extra(path: Path) -> tuple[list[OfferRow], SourceReport]:
    """Parse a curated offers file (one provider, each row with its own source and date)."""
    report = SourceReport(str(path.name))
    raws = _read_csv(path)
    if raws and list(raws[0]) != EXTRA_COLUMNS:
        raise CatalogError(f"{path}: columns must be {','.join(EXTRA_COLUMNS)}")
    rows: list[OfferRow] = []
    for n, raw in enumerate(raws, start=2):
        where = f"{path}:{n}"
        if raw["price_unit"].strip() != "hour":
            raise CatalogError(f"{where}: price_unit must be 'hour'")
        try:
            price, spot = parse_price(raw["price"]), parse_price(raw["spot_price"])
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        if price == MISSING and spot == MISSING:
            report.dropped["no price at all"] += 1
            continue
        count = _float(raw["accelerator_count"]) or 0.0
        memory_gib = _float(raw["gpu_memory_gib"])
        currency = raw["currency"].strip().upper()
        if len(currency) != 3:
            raise CatalogError(f"{where}: currency must be an ISO 4217 code")
        rows.append(
            OfferRow(
                provider=raw["provider"].strip(),
                region=raw["region"].strip(),
                zone=raw["zone"].strip(),
                instance_type=raw["instance_type"].strip(),
                accelerator=canonical_accelerator(raw["accelerator"]),
                accelerator_count=count,
                gpu_memory_mib=whole_gib(memory_gib * 1024) if memory_gib else 0,
                vcpus=_float(raw["vcpus"]),
                memory_gib=_float(raw["memory_gib"]),
                price=price,
                spot_price=spot,
                currency=currency,
                source=f"{raw['source'].strip()} (as of {raw['as_of'].strip()})",
            )
        )
    report.kept = len(rows)
    return rows, report


def dedupe(rows: Iterable[OfferRow]) -> list[OfferRow]:
    """Drop exact duplicate rows, keeping the first (sources sometimes repeat a row)."""
    seen: set[OfferRow] = set()
    out = []
    for row in rows:
        if row not in seen:
            seen.add(row)
            out.append(row)
    return out
