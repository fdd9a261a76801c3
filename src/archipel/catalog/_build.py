"""Build the offer snapshot from the shipped sources, and save or load it.

The snapshot is a compressed ``.npz``: one array per column of
:data:`archipel.core.COLUMNS`, the string tables, and a JSON document with the
provider registry, the jurisdictions, the exchange rates and a report of what
each source contributed. Building is deterministic: the same sources give a
byte-identical file, so the shipped snapshot can be checked against its sources.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from archipel.catalog._registry import (
    DATA_DIR,
    load_fx,
    load_jurisdictions,
    load_providers,
    load_regions,
)
from archipel.catalog._sources import (
    OfferRow,
    SourceReport,
    dedupe,
    parse_extra,
    parse_gcp,
    parse_skypilot,
)
from archipel.core import (
    COLUMNS,
    MISSING,
    CatalogError,
    CatalogSnapshot,
    CloudActExposure,
    Jurisdictions,
    OfferClass,
    OfferTable,
    ProviderFacts,
    to_nano,
)

#: catalog folder name -> provider id in the registry
SKYPILOT_CLOUDS: Mapping[str, str] = {
    "aws": "aws",
    "azure": "azure",
    "gcp": "gcp",
    "hyperbolic": "hyperbolic",
    "hyperstack": "hyperstack",
    "lambda": "lambda",
    "nebius": "nebius",
    "oci": "oci",
    "ovhcloud": "ovhcloud",
    "scaleway": "scaleway",
    "seeweb": "seeweb",
    "vast": "vast",
    "verda": "verda",
}

SNAPSHOT_FILE = DATA_DIR / "snapshot.npz"
_FORMAT = 1


#: the billing currency of a price catalog whose provider does not bill in USD
#: (Scaleway's API and price page quote euros: RENDER-S is EUR 1.2426 an hour)
SKYPILOT_CURRENCY: Mapping[str, str] = {"scaleway": "EUR"}


def collect_rows(data_dir: Path = DATA_DIR) -> tuple[list[OfferRow], list[SourceReport]]:
    """Parse every shipped source into offer rows, with a report per source.

    A curated offer file states each row's own source, date and currency, so a
    curated row replaces the price catalog's rows of the same provider, region
    and instance type: one row per real offer, never the same offer twice.
    """
    catalogs: list[tuple[list[OfferRow], SourceReport]] = []
    for cloud, provider in SKYPILOT_CLOUDS.items():
        path = data_dir / "skypilot" / cloud / "vms.csv.gz"
        source = f"skypilot-catalog {cloud}/vms.csv"
        currency = SKYPILOT_CURRENCY.get(cloud, "USD")
        catalogs.append(
            parse_gcp(path, source)
            if cloud == "gcp"
            else parse_skypilot(provider, path, source, currency)
        )
    curated = [parse_extra(path) for path in sorted((data_dir / "extra_offers").glob("*.csv"))]
    taken = {(r.provider, r.region, r.instance_type) for got, _ in curated for r in got}
    rows: list[OfferRow] = []
    for got, report in catalogs:
        kept = [r for r in got if (r.provider, r.region, r.instance_type) not in taken]
        if len(kept) < len(got):
            report.dropped["superseded by a curated offer"] += len(got) - len(kept)
            report.kept = len(kept)
        rows += kept
    for got, _ in curated:
        rows += got
    return dedupe(rows), [report for _, report in [*catalogs, *curated]]


def _to_cmp(nano: int, rate: Decimal) -> int:
    if nano == MISSING:
        return MISSING
    return to_nano(Decimal(nano).scaleb(-9) * rate, round_half_even=True)


def _order(rows: Sequence[OfferRow]) -> list[OfferRow]:
    return sorted(
        rows,
        key=lambda r: (
            r.accelerator,
            r.accelerator_count,
            r.provider,
            r.region,
            r.zone,
            r.instance_type,
            r.price,
            r.spot_price,
        ),
    )


def _classes(
    ordered: Sequence[OfferRow], regions: Mapping[tuple[str, str], str | None]
) -> list[OfferClass]:
    """One class per (provider, region): the country the source states, else the table's."""
    stated = {(r.provider, r.region): r.country for r in ordered if r.country}
    return [
        OfferClass(provider=p, region=reg, country=stated.get((p, reg)) or regions.get((p, reg)))
        for p, reg in sorted({(r.provider, r.region) for r in ordered})
    ]


def _columns(
    ordered: Sequence[OfferRow],
    classes: Sequence[OfferClass],
    accelerators: Sequence[str],
    strings: Sequence[str],
    fx: Mapping[str, Decimal],
) -> dict[str, list[Any]]:
    accel_pos = {a: i for i, a in enumerate(accelerators)}
    class_pos = {(c.provider, c.region): i for i, c in enumerate(classes)}
    string_pos = {s: i for i, s in enumerate(strings)}
    nan = float("nan")
    return {
        "class_idx": [class_pos[(r.provider, r.region)] for r in ordered],
        "zone_idx": [string_pos[r.zone] for r in ordered],
        "instance_idx": [string_pos[r.instance_type] for r in ordered],
        "accel_idx": [accel_pos[r.accelerator] for r in ordered],
        "accel_count": [r.accelerator_count for r in ordered],
        "gpu_memory_mib": [r.gpu_memory_mib for r in ordered],
        "vcpus": [nan if r.vcpus is None else r.vcpus for r in ordered],
        "memory_gib": [nan if r.memory_gib is None else r.memory_gib for r in ordered],
        "price": [r.price for r in ordered],
        "spot_price": [r.spot_price for r in ordered],
        "cmp_price": [_to_cmp(r.price, fx[r.currency]) for r in ordered],
        "cmp_spot_price": [_to_cmp(r.spot_price, fx[r.currency]) for r in ordered],
        "currency_idx": [string_pos[r.currency] for r in ordered],
        "source_idx": [string_pos[r.source] for r in ordered],
    }


def build_table(
    rows: Sequence[OfferRow],
    regions: Mapping[tuple[str, str], str | None],
    fx: Mapping[str, Decimal],
) -> OfferTable:
    """Turn rows into a sorted, indexed :class:`OfferTable`."""
    ordered = _order(rows)
    for currency in sorted({r.currency for r in ordered}):
        if currency not in fx:
            raise CatalogError(f"no exchange rate for {currency}: add it to fx.yaml")
    accelerators = sorted({r.accelerator for r in ordered})
    classes = _classes(ordered, regions)
    strings = sorted({s for r in ordered for s in (r.zone, r.instance_type, r.currency, r.source)})
    cols = _columns(ordered, classes, accelerators, strings, fx)
    arrays: dict[str, np.ndarray] = {
        name: np.asarray(cols[name], dtype=dtype) for name, dtype in COLUMNS.items()
    }
    return offer_table(arrays, classes, accelerators, strings)


def offer_table(
    arrays: dict[str, np.ndarray],
    classes: Sequence[OfferClass],
    accelerators: Sequence[str],
    strings: Sequence[str],
) -> OfferTable:
    """A table of columns already sorted by accelerator, with the start of each one's slice."""
    starts = np.searchsorted(arrays["accel_idx"], np.arange(len(accelerators) + 1)).astype(np.int64)
    return OfferTable(
        columns=arrays,
        classes=tuple(classes),
        accelerators=tuple(accelerators),
        strings=tuple(strings),
        accel_start=starts,
    )


def build_snapshot(data_dir: Path = DATA_DIR) -> tuple[CatalogSnapshot, list[SourceReport]]:
    """Build the whole snapshot from the sources under ``data_dir``."""
    rows, reports = collect_rows(data_dir)
    currency, fx = load_fx(data_dir)
    table = build_table(rows, load_regions(data_dir), fx)
    snapshot = CatalogSnapshot(
        offers=table,
        providers=load_providers(data_dir),
        jurisdictions=load_jurisdictions(data_dir),
        comparison_currency=currency,
        fx_rates=fx,
        built_from=tuple(r.source for r in reports),
    )
    return snapshot, reports


def _meta(snapshot: CatalogSnapshot, reports: Sequence[SourceReport]) -> dict[str, Any]:
    j = snapshot.jurisdictions
    return {
        "format": _FORMAT,
        "classes": [[c.provider, c.region, c.country] for c in snapshot.offers.classes],
        "accelerators": list(snapshot.offers.accelerators),
        "strings": list(snapshot.offers.strings),
        "providers": [
            {**asdict(p), "certifications": dict(p.certifications), "sources": list(p.sources)}
            for p in sorted(snapshot.providers.values(), key=lambda p: p.id)
        ],
        "jurisdictions": {
            "eu": sorted(j.eu),
            "eea_non_eu": sorted(j.eea_non_eu),
            "adequacy_full": sorted(j.adequacy_full),
            "adequacy_partial": sorted(j.adequacy_partial),
            "notes": dict(sorted(j.notes.items())),
        },
        "comparison_currency": snapshot.comparison_currency,
        "fx_rates": {k: str(v) for k, v in sorted(snapshot.fx_rates.items())},
        "reports": [
            {"source": r.source, "kept": r.kept, "dropped": dict(sorted(r.dropped.items()))}
            for r in reports
        ],
    }


def save_snapshot(
    snapshot: CatalogSnapshot, path: Path, reports: Sequence[SourceReport] = ()
) -> None:
    """Write the snapshot atomically (temporary file, then rename), byte-reproducibly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    meta = json.dumps(_meta(snapshot, reports), sort_keys=True).encode()
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in [*COLUMNS, "accel_start"]:
            arr = (
                snapshot.offers.accel_start if name == "accel_start" else snapshot.offers.col(name)
            )
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(
            zipfile.ZipInfo("meta.json", date_time=(1980, 1, 1, 0, 0, 0)),
            meta,
            compress_type=zipfile.ZIP_DEFLATED,
        )
    tmp.replace(path)


def load_snapshot(path: Path = SNAPSHOT_FILE) -> CatalogSnapshot:
    """Load a snapshot written by :func:`save_snapshot`."""
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
            arrays = {
                name: np.lib.format.read_array(
                    io.BytesIO(zf.read(f"{name}.npy")), allow_pickle=False
                )
                for name in [*COLUMNS, "accel_start"]
            }
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CatalogError(
            f"cannot read the offer snapshot {path}: {exc}. "
            "Rebuild it with `archipel catalog build` "
            "or refresh it with `archipel catalog refresh`."
        ) from exc
    if meta.get("format") != _FORMAT:
        raise CatalogError(
            f"{path}: snapshot format {meta.get('format')} is not {_FORMAT}; rebuild it"
        )
    starts = arrays.pop("accel_start")
    table = OfferTable(
        columns=arrays,
        classes=tuple(OfferClass(p, r, c) for p, r, c in meta["classes"]),
        accelerators=tuple(meta["accelerators"]),
        strings=tuple(meta["strings"]),
        accel_start=starts,
    )
    providers = {}
    for p in meta["providers"]:
        exposure = p.pop("cloud_act")
        providers[p["id"]] = ProviderFacts(
            **{**p, "sources": tuple(p["sources"])},
            cloud_act=None if exposure is None else CloudActExposure(exposure),
        )
    j = meta["jurisdictions"]
    return CatalogSnapshot(
        offers=table,
        providers=providers,
        jurisdictions=Jurisdictions(
            eu=frozenset(j["eu"]),
            eea_non_eu=frozenset(j["eea_non_eu"]),
            adequacy_full=frozenset(j["adequacy_full"]),
            adequacy_partial=frozenset(j["adequacy_partial"]),
            notes=j["notes"],
        ),
        comparison_currency=meta["comparison_currency"],
        fx_rates={k: Decimal(v) for k, v in meta["fx_rates"].items()},
        built_from=tuple(r["source"] for r in meta["reports"]),
    )
