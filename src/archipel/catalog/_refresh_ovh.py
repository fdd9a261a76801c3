"""OVHcloud's public cloud order catalog: hourly GPU flavors, EUR, excluding VAT."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from archipel.catalog._refresh_base import (
    ShippedRows,
    ShippedSpec,
    SourceError,
    as_list,
    as_mapping,
    as_number,
    json_body,
    shipped_specs,
)
from archipel.catalog._sources import OfferRow
from archipel.core import MISSING, canonical_accelerator, to_nano

if TYPE_CHECKING:
    import httpx

OVH_CATALOG_URL = "https://api.ovh.com/1.0/order/catalog/public/cloud"
OVH_SUBSIDIARY = "FR"
_OVH_SOURCE = (
    f"OVHcloud public cloud catalog {OVH_CATALOG_URL}?ovhSubsidiary={OVH_SUBSIDIARY} "
    "(hourly, excl. VAT)"
)
# The catalog's schema (order.catalog.public.Pricing) documents `price` as a long "in
# micro-cents": 1e-6 cent = 1e-8 of the currency unit, so 1 EUR = 100_000_000. Nano-units
# are 1e-9, hence one micro-cent is exactly 10 nano-units: an exact conversion, no rounding.
_MICRO_CENT_EXPONENT = -8


def _ovh_accelerator(gpu: Mapping[str, Any]) -> tuple[str, int]:
    """Canonical accelerator name and per-GPU memory (MiB) from a technical blob's ``gpu``."""
    model = str(gpu.get("model") or "").strip()
    for prefix in ("NVIDIA ", "Nvidia ", "Tesla "):
        model = model.removeprefix(prefix)
    memory = as_number(as_mapping(gpu.get("memory") or {}, "gpu.memory").get("size"))
    mib = int(memory * 1024) if memory else 0
    name = canonical_accelerator(model.replace(" ", "-"))
    # the catalog's names for the larger-memory parts of these models
    if name == "A100" and memory and memory >= 80:
        name = "A100-80GB"
    elif name in ("V100", "V100S") and memory and memory >= 32:
        name = f"{name}-32GB"
    return name, mib


def _ovh_hourly_price(pricings: list[Any], where: str) -> int | None:
    """The hourly consumption price in nano-units, ``None`` if the plan has none."""
    hourly = []
    for n, raw in enumerate(pricings):
        p = as_mapping(raw, f"{where}: pricings[{n}]")
        consumption = p.get("type") == "consumption" or "consumption" in (p.get("capacities") or [])
        if consumption and p.get("intervalUnit") == "hour" and p.get("interval", 1) == 1:
            hourly.append(p)
    if not hourly:
        return None
    first = min(hourly, key=lambda p: p.get("phase") or 0)
    price = first.get("price")
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise SourceError(f"{where}: price {price!r} is not a whole number of micro-cents")
    return to_nano(Decimal(price).scaleb(_MICRO_CENT_EXPONENT))


def _ovh_regions(plan: Mapping[str, Any], where: str) -> list[str]:
    """Regions stated by the plan's ``region`` configuration, if any."""
    regions: list[str] = []
    for n, raw in enumerate(as_list(plan.get("configurations"), f"{where}: configurations")):
        conf = as_mapping(raw, f"{where}: configurations[{n}]")
        if str(conf.get("name") or "").lower() == "region":
            regions += [
                str(v).strip() for v in as_list(conf.get("values"), where) if str(v).strip()
            ]
    return sorted(set(regions))


def _ovh_currency(doc: Mapping[str, Any]) -> str:
    currency = str(as_mapping(doc.get("locale"), "OVHcloud locale").get("currencyCode") or "")
    if len(currency) != 3 or not currency.isupper():
        raise SourceError(f"OVHcloud catalog: locale.currencyCode {currency!r} is not ISO 4217")
    return currency


def _shipped_places(shipped: Sequence[OfferRow]) -> dict[str, set[tuple[str, str]]]:
    """Flavor -> the (region, zone) pairs of its shipped accelerator rows."""
    places: dict[str, set[tuple[str, str]]] = {}
    for r in shipped:
        if r.provider == "ovhcloud" and r.accelerator:
            places.setdefault(r.instance_type, set()).add((r.region, r.zone))
    return places


@dataclass(frozen=True, slots=True)
class _Shipped:
    """What the shipped catalog knows of OVHcloud's flavors: names, sizes and places."""

    specs: Mapping[str, ShippedSpec]
    places: Mapping[str, set[tuple[str, str]]]
    currency: str


def _flavor_rows(plan: Mapping[str, Any], shipped: _Shipped) -> list[OfferRow]:
    """The offers of one plan: one per location of an hourly GPU flavor, none otherwise."""
    code = str(plan.get("planCode") or "")
    flavor = code.removesuffix(".consumption")
    if flavor == code or not flavor or flavor.startswith("win-"):
        return []
    where = f"OVHcloud {code}"
    tech = as_mapping(as_mapping(plan.get("blobs") or {}, where).get("technical") or {}, where)
    gpu = as_mapping(tech.get("gpu") or {}, f"{where}: gpu")
    count = as_number(gpu.get("number")) or 0.0
    price = _ovh_hourly_price(as_list(plan.get("pricings"), f"{where}: pricings"), where)
    if count <= 0 or price is None:
        return []
    accelerator, gpu_mib = _ovh_accelerator(gpu)
    spec = shipped.specs.get(flavor)
    if spec is not None:  # keep the shipped catalog's naming for a known flavor
        accelerator, gpu_mib = spec.accelerator, spec.gpu_memory_mib or gpu_mib
    if not accelerator:
        raise SourceError(f"{where}: the GPU model is not stated")
    stated = [(region, "") for region in _ovh_regions(plan, where)]
    locations = stated or sorted(shipped.places.get(flavor, ())) or [("", "")]
    cpu = as_mapping(tech.get("cpu") or {}, f"{where}: cpu")
    memory = as_mapping(tech.get("memory") or {}, f"{where}: memory")
    return [
        OfferRow(
            provider="ovhcloud",
            region=region,
            zone=zone,
            instance_type=flavor,
            accelerator=accelerator,
            accelerator_count=count,
            gpu_memory_mib=gpu_mib,
            vcpus=as_number(cpu.get("cores")),
            memory_gib=as_number(memory.get("size")),
            price=price,
            spot_price=MISSING,  # OVHcloud sells no spot capacity
            currency=shipped.currency,
            source=_OVH_SOURCE,
        )
        for region, zone in locations
    ]


def ovh_rows(catalog: object, shipped: Sequence[OfferRow]) -> list[OfferRow]:
    """Offer rows from the public cloud catalog: hourly GPU flavors (``<flavor>.consumption``).

    A flavor is a GPU flavor when its technical blob states at least one GPU.
    Regions come from the plan's ``region`` configuration; where the catalog
    states none, the regions (and zones) of the shipped rows of the same flavor
    are kept, and a flavor unknown to the shipped catalog gets an empty region
    (unknown country, so it fails every country rule, like other unplaced rows).
    """
    doc = as_mapping(catalog, "OVHcloud catalog")
    known = _Shipped(
        shipped_specs(shipped, "ovhcloud"), _shipped_places(shipped), _ovh_currency(doc)
    )
    plans = as_list(doc.get("plans"), "OVHcloud plans")
    plans += as_list(doc.get("addons"), "OVHcloud addons")
    rows: list[OfferRow] = []
    for n, raw in enumerate(plans):
        rows += _flavor_rows(as_mapping(raw, f"OVHcloud plan {n}"), known)
    return rows


@dataclass(frozen=True)
class OvhCloudCatalog:
    """OVHcloud's public order catalog for Public Cloud (no authentication)."""

    shipped: ShippedRows  # where regions and accelerator names of known flavors come from
    name: str = "ovhcloud"
    provider: str = "ovhcloud"

    def fetch(self, client: httpx.Client) -> list[OfferRow]:
        response = client.get(
            OVH_CATALOG_URL, params={"ovhSubsidiary": OVH_SUBSIDIARY}, follow_redirects=True
        )
        response.raise_for_status()
        return ovh_rows(json_body(response, "OVHcloud catalog"), self.shipped())
