"""Refresh the catalog from providers' public price sources, when online.

A *price source* reads one provider's public price list and returns offer rows
that replace the shipped accelerator offers of that provider; a *rate source*
returns exchange rates into the comparison currency. Sources live in one
explicit table, :data:`SOURCES` (name -> factory). :func:`refresh` runs the
selected sources through one injected :class:`httpx.Client` (tests give it an
``httpx.MockTransport``), keeps the shipped rows of every provider whose source
failed, and rebuilds the offer table. A source that fails is reported as data;
only faults of Archipel itself are raised.

Exceptions::

    CatalogError (archipel.core)
      └── SourceError   a source answered, but not in its documented format

Sources (all public, no credentials):

- ``azure``: Azure Retail Prices API, GPU VM families (NC, ND, NG, NV), Linux
  pay-as-you-go and Spot prices. The API states no accelerators, so each SKU's
  accelerators, vCPUs and memory come from the shipped Azure rows of the same
  instance type; a SKU the shipped catalog does not know is skipped.
- ``ovhcloud``: OVHcloud's public cloud order catalog (FR subsidiary, EUR,
  prices excluding VAT), hourly ``*.consumption`` GPU flavors.
- ``ecb``: the ECB's daily euro reference rates, turned into rates into the
  comparison currency (USD per EUR, USD per GBP, ...).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from xml.etree import ElementTree

from archipel.catalog._build import build_table, collect_rows
from archipel.catalog._registry import (
    DATA_DIR,
    load_fx,
    load_jurisdictions,
    load_providers,
    load_regions,
)
from archipel.catalog._sources import OfferRow, SourceReport, dedupe
from archipel.core import (
    MISSING,
    CatalogError,
    CatalogSnapshot,
    InputError,
    canonical_accelerator,
    to_nano,
)

if TYPE_CHECKING:  # httpx is imported where a fetch runs: ~0.1 s that `archipel plan` skips
    import httpx


class SourceError(CatalogError):
    """A price or rate source answered, but not in its documented format."""


@runtime_checkable
class PriceSource(Protocol):
    """Reads one provider's public prices; its rows replace that provider's shipped offers."""

    @property
    def name(self) -> str:
        """Stable name, used on the command line (``--source NAME``)."""
        ...

    @property
    def provider(self) -> str:
        """The provider id (``providers.yaml``) whose shipped accelerator offers it replaces."""
        ...

    def fetch(self, client: httpx.Client) -> list[OfferRow]:
        """Fetch and parse the offers; raise ``httpx.HTTPError`` or :class:`SourceError`."""
        ...


@runtime_checkable
class RateSource(Protocol):
    """Reads exchange rates into the comparison currency."""

    @property
    def name(self) -> str:
        """Stable name, used on the command line (``--source NAME``)."""
        ...

    def fetch_rates(self, client: httpx.Client, comparison_currency: str) -> dict[str, Decimal]:
        """Each currency's rate into ``comparison_currency`` (1 unit -> that many units)."""
        ...


#: the shipped offer rows, parsed on first call (only once a source has answered)
ShippedRows = Callable[[], Sequence[OfferRow]]
#: builds a source; sources that need facts their API lacks read them from the shipped rows
SourceFactory = Callable[[ShippedRows], PriceSource | RateSource]


def source_registry(*entries: tuple[str, SourceFactory]) -> dict[str, SourceFactory]:
    """An explicit name -> factory table; a duplicate name is an error."""
    table: dict[str, SourceFactory] = {}
    for name, factory in entries:
        if name in table:
            raise CatalogError(f"refresh source {name!r} is registered twice")
        table[name] = factory
    return table


# --- money and JSON helpers -------------------------------------------------------------


def _nano(value: object, where: str) -> int:
    """An exact non-negative decimal (never a float) as nano-units.

    Live sources occasionally quote more than nine decimals; nano-units are the
    catalog's resolution, so such a price is rounded half-even to 1e-9 per hour.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise SourceError(f"{where}: price {value!r} is not a decimal number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SourceError(f"{where}: price {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise SourceError(f"{where}: price {value!r} is not a finite non-negative number")
    return to_nano(amount, round_half_even=True)


def _json(response: httpx.Response, where: str) -> Any:
    """The JSON body with every non-integer number as an exact :class:`Decimal`."""
    try:
        return json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise SourceError(f"{where}: the answer is not JSON: {exc}") from exc


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SourceError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value


def _number(value: object) -> float | None:
    """A vCPU or memory figure (not money, so a float is fine), ``None`` when absent."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class _Spec:
    """What the shipped catalog knows about an instance type that a price API does not state."""

    accelerator: str
    accelerator_count: float
    gpu_memory_mib: int
    vcpus: float | None
    memory_gib: float | None


def _shipped_specs(rows: Iterable[OfferRow], provider: str) -> dict[str, _Spec]:
    """Instance type -> accelerators and size, from the shipped accelerator rows of ``provider``."""
    specs: dict[str, _Spec] = {}
    for r in rows:
        if r.provider == provider and r.accelerator and r.instance_type not in specs:
            specs[r.instance_type] = _Spec(
                r.accelerator, r.accelerator_count, r.gpu_memory_mib, r.vcpus, r.memory_gib
            )
    return specs


# --- Azure Retail Prices API ------------------------------------------------------------

AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"
#: GPU VM families (Azure's N family: NC, ND, NG, NV); NP is FPGA and has no shipped accelerator
AZURE_GPU_FAMILIES = ("Standard_NC", "Standard_ND", "Standard_NG", "Standard_NV")
AZURE_FILTER = (
    "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and ("
    + " or ".join(f"startswith(armSkuName, '{family}')" for family in AZURE_GPU_FAMILIES)
    + ")"
)
_AZURE_MAX_PAGES = 1000  # a guard against a NextPageLink loop, far above the real count
_AZURE_SOURCE = f"Azure Retail Prices API {AZURE_PRICES_URL}"


def azure_rows(items: Iterable[object], shipped: Sequence[OfferRow]) -> list[OfferRow]:
    """Offer rows from Retail Prices API items: Linux pay-as-you-go and Spot, per SKU and region.

    Windows meters (``productName`` ends in "Windows") and Low Priority meters are
    other ways to buy the same VM and are skipped; a Spot meter (``skuName``
    contains "Spot") becomes the row's spot price. Where the API lists one
    meter twice, the primary-region meter with the latest ``effectiveStartDate``
    wins, then the lower price. A SKU without shipped accelerator rows is skipped.
    """
    specs = _shipped_specs(shipped, "azure")
    # (sku, region, spot) -> (preference, price in nano-units, currency)
    best: dict[tuple[str, str, bool], tuple[tuple[bool, str, int], int, str]] = {}
    for n, raw in enumerate(items):
        item = _mapping(raw, f"Azure item {n}")
        sku = str(item.get("armSkuName") or "").strip()
        region = str(item.get("armRegionName") or "").strip()
        sku_name = str(item.get("skuName") or "")
        if (
            not sku
            or not region
            or sku not in specs
            or item.get("type") != "Consumption"
            or item.get("unitOfMeasure") != "1 Hour"
            or str(item.get("productName") or "").rstrip().endswith("Windows")
            or "Low Priority" in sku_name
        ):
            continue
        price = _nano(item.get("retailPrice"), f"Azure {sku} in {region}")
        currency = str(item.get("currencyCode") or "USD").upper()
        preference = (
            item.get("isPrimaryMeterRegion") is not False,
            str(item.get("effectiveStartDate") or ""),
            -price,
        )
        key = (sku, region, "Spot" in sku_name)
        if key not in best or preference > best[key][0]:
            best[key] = (preference, price, currency)
    rows: list[OfferRow] = []
    for sku, region in sorted({(sku, region) for sku, region, _ in best}):
        on_demand, spot = best.get((sku, region, False)), best.get((sku, region, True))
        currency = on_demand[2] if on_demand else spot[2] if spot else "USD"
        spec = specs[sku]
        rows.append(
            OfferRow(
                provider="azure",
                region=region,
                zone="",
                instance_type=sku,
                accelerator=spec.accelerator,
                accelerator_count=spec.accelerator_count,
                gpu_memory_mib=spec.gpu_memory_mib,
                vcpus=spec.vcpus,
                memory_gib=spec.memory_gib,
                price=on_demand[1] if on_demand else MISSING,
                # a spot meter in another currency than the on-demand one cannot share the row
                spot_price=spot[1] if spot and spot[2] == currency else MISSING,
                currency=currency,
                source=_AZURE_SOURCE,
            )
        )
    return rows


@dataclass(frozen=True)
class AzureRetailPrices:
    """Azure's Retail Prices API: unauthenticated JSON, paginated by ``NextPageLink``."""

    shipped: ShippedRows  # where each SKU's accelerators, vCPUs and memory come from
    name: str = "azure"
    provider: str = "azure"

    def fetch(self, client: httpx.Client) -> list[OfferRow]:
        import httpx

        items: list[object] = []
        response = client.get(AZURE_PRICES_URL, params={"$filter": AZURE_FILTER})
        for page in range(1, _AZURE_MAX_PAGES + 1):
            response.raise_for_status()
            body = _mapping(_json(response, f"Azure page {page}"), f"Azure page {page}")
            items += _list(body.get("Items"), f"Azure page {page}: Items")
            link = body.get("NextPageLink")
            if not link:
                return azure_rows(items, self.shipped())
            url = httpx.URL(str(link))
            if url.host != httpx.URL(AZURE_PRICES_URL).host:
                raise SourceError(f"Azure NextPageLink leaves {AZURE_PRICES_URL}: {link}")
            response = client.get(url)
        raise SourceError(f"Azure: more than {_AZURE_MAX_PAGES} pages; stopped following links")


# --- OVHcloud public cloud catalog ------------------------------------------------------

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
    memory = _number(_mapping(gpu.get("memory") or {}, "gpu.memory").get("size"))
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
        p = _mapping(raw, f"{where}: pricings[{n}]")
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
    for n, raw in enumerate(_list(plan.get("configurations"), f"{where}: configurations")):
        conf = _mapping(raw, f"{where}: configurations[{n}]")
        if str(conf.get("name") or "").lower() == "region":
            regions += [str(v).strip() for v in _list(conf.get("values"), where) if str(v).strip()]
    return sorted(set(regions))


def ovh_rows(catalog: object, shipped: Sequence[OfferRow]) -> list[OfferRow]:
    """Offer rows from the public cloud catalog: hourly GPU flavors (``<flavor>.consumption``).

    A flavor is a GPU flavor when its technical blob states at least one GPU.
    Regions come from the plan's ``region`` configuration; where the catalog
    states none, the regions (and zones) of the shipped rows of the same flavor
    are kept, and a flavor unknown to the shipped catalog gets an empty region
    (unknown country, so it fails every country rule, like other unplaced rows).
    """
    doc = _mapping(catalog, "OVHcloud catalog")
    currency = str(_mapping(doc.get("locale"), "OVHcloud locale").get("currencyCode") or "")
    if len(currency) != 3 or not currency.isupper():
        raise SourceError(f"OVHcloud catalog: locale.currencyCode {currency!r} is not ISO 4217")
    specs = _shipped_specs(shipped, "ovhcloud")
    places: dict[str, set[tuple[str, str]]] = {}
    for r in shipped:
        if r.provider == "ovhcloud" and r.accelerator:
            places.setdefault(r.instance_type, set()).add((r.region, r.zone))
    rows: list[OfferRow] = []
    plans = _list(doc.get("plans"), "OVHcloud plans") + _list(doc.get("addons"), "OVHcloud addons")
    for n, raw in enumerate(plans):
        plan = _mapping(raw, f"OVHcloud plan {n}")
        code = str(plan.get("planCode") or "")
        flavor = code.removesuffix(".consumption")
        if flavor == code or not flavor or flavor.startswith("win-"):
            continue
        where = f"OVHcloud {code}"
        tech = _mapping(_mapping(plan.get("blobs") or {}, where).get("technical") or {}, where)
        gpu = _mapping(tech.get("gpu") or {}, f"{where}: gpu")
        count = _number(gpu.get("number")) or 0.0
        if count <= 0:
            continue
        price = _ovh_hourly_price(_list(plan.get("pricings"), f"{where}: pricings"), where)
        if price is None:
            continue
        accelerator, gpu_mib = _ovh_accelerator(gpu)
        spec = specs.get(flavor)
        if spec is not None:  # keep the shipped catalog's naming for a known flavor
            accelerator, gpu_mib = spec.accelerator, spec.gpu_memory_mib or gpu_mib
        if not accelerator:
            raise SourceError(f"{where}: the GPU model is not stated")
        stated = _ovh_regions(plan, where)
        locations = (
            [(region, "") for region in stated] or sorted(places.get(flavor, ())) or [("", "")]
        )
        cpu = _mapping(tech.get("cpu") or {}, f"{where}: cpu")
        memory = _mapping(tech.get("memory") or {}, f"{where}: memory")
        for region, zone in locations:
            rows.append(
                OfferRow(
                    provider="ovhcloud",
                    region=region,
                    zone=zone,
                    instance_type=flavor,
                    accelerator=accelerator,
                    accelerator_count=count,
                    gpu_memory_mib=gpu_mib,
                    vcpus=_number(cpu.get("cores")),
                    memory_gib=_number(memory.get("size")),
                    price=price,
                    spot_price=MISSING,  # OVHcloud sells no spot capacity
                    currency=currency,
                    source=_OVH_SOURCE,
                )
            )
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
        return ovh_rows(_json(response, "OVHcloud catalog"), self.shipped())


# --- ECB euro foreign exchange reference rates ------------------------------------------

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
_RATE_QUANTUM = Decimal("1e-12")


def parse_ecb(xml: bytes | str) -> tuple[str, dict[str, Decimal]]:
    """The reference day and each currency's units per euro (``EUR`` itself is 1)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise SourceError(f"ECB reference rates: not XML: {exc}") from exc
    day, per_eur = "", {"EUR": Decimal(1)}
    for cube in root.iter():
        if cube.tag.rsplit("}", 1)[-1] != "Cube":  # namespaces vary; the element name does not
            continue
        day = cube.get("time") or day
        code, rate = cube.get("currency"), cube.get("rate")
        if code is None or rate is None:
            continue
        try:
            value = Decimal(rate)
        except InvalidOperation:
            raise SourceError(f"ECB reference rates: {code} rate {rate!r} is not decimal") from None
        if not value.is_finite() or value <= 0:
            raise SourceError(f"ECB reference rates: {code} rate {rate!r} is not positive")
        per_eur[code.strip().upper()] = value
    if len(per_eur) == 1:
        raise SourceError("ECB reference rates: the document holds no rate")
    return day, per_eur


def _exact_rate(value: Decimal) -> Decimal:
    """A rate rounded half-even to 12 decimals, without trailing zeros."""
    rounded = value.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
    return rounded.quantize(Decimal(1)) if rounded == rounded.to_integral_value() else rounded


def rates_into(per_eur: Mapping[str, Decimal], comparison_currency: str) -> dict[str, Decimal]:
    """Cross rates into ``comparison_currency``: rate(X) = units of it per unit of X.

    With USD as the comparison currency, rate(EUR) is the ECB's USD rate and
    rate(GBP) = USD-per-EUR / GBP-per-EUR.
    """
    target = per_eur.get(comparison_currency)
    if target is None:
        raise SourceError(f"ECB reference rates: no rate for {comparison_currency}")
    return {code: _exact_rate(target / units) for code, units in sorted(per_eur.items())}


@dataclass(frozen=True)
class EcbReferenceRates:
    """The ECB's daily euro reference rates (published around 16:00 CET on working days)."""

    name: str = "ecb"

    def fetch_rates(self, client: httpx.Client, comparison_currency: str) -> dict[str, Decimal]:
        response = client.get(ECB_DAILY_URL, follow_redirects=True)
        response.raise_for_status()
        return rates_into(parse_ecb(response.content)[1], comparison_currency)


#: every refresh source, by stable name (the order in which they run)
SOURCES: Mapping[str, SourceFactory] = source_registry(
    ("azure", AzureRetailPrices),
    ("ovhcloud", OvhCloudCatalog),
    ("ecb", lambda shipped: EcbReferenceRates()),
)


# --- refresh ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What one source did: refreshed (with how many offers or rates) or failed (and why)."""

    name: str
    kind: Literal["prices", "fx"]
    ok: bool
    count: int  # offers (prices) or exchange rates (fx) fetched; 0 when failed
    provider: str | None = None  # the provider a price source refreshes
    error: str | None = None


@dataclass(frozen=True)
class RefreshResult:
    """The refreshed snapshot, one outcome per source, and the reports to save with it."""

    snapshot: CatalogSnapshot | None  # None when every source failed: nothing to write
    outcomes: tuple[SourceOutcome, ...]
    reports: tuple[SourceReport, ...]

    @property
    def any_ok(self) -> bool:
        """Whether at least one source refreshed."""
        return self.snapshot is not None


def _host(exc: httpx.HTTPError) -> str:
    try:
        return exc.request.url.host or str(exc.request.url)
    except RuntimeError:  # the request was never attached
        return "the source"


def describe_failure(exc: httpx.HTTPError | SourceError) -> str:
    """A one-line, human message for a source failure."""
    import httpx

    if isinstance(exc, SourceError):
        return str(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{_host(exc)} answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out talking to {_host(exc)} ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach {_host(exc)} (offline?): {str(exc) or type(exc).__name__}"
    return f"{_host(exc)}: {type(exc).__name__}: {exc}"


def _select(registry: Mapping[str, SourceFactory], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(registry)
    unknown = sorted(set(names) - set(registry))
    if unknown:
        raise InputError(
            f"unknown refresh source {', '.join(unknown)}; known: {', '.join(registry)}"
        )
    if not names:
        raise InputError(f"no refresh source selected; known: {', '.join(registry)}")
    return [name for name in registry if name in set(names)]


def refresh(
    client: httpx.Client,
    names: Sequence[str] | None = None,
    *,
    data_dir: Path = DATA_DIR,
    registry: Mapping[str, SourceFactory] = SOURCES,
    shipped: tuple[Sequence[OfferRow], Sequence[SourceReport]] | None = None,
    today: date | None = None,
) -> RefreshResult:
    """Fetch the selected sources (all by default) and rebuild the snapshot from the results.

    Every source runs through ``client``. The shipped accelerator offers of each
    provider whose price source succeeded are replaced by the fetched rows (its
    CPU-only offers are kept: the sources read GPU families only); a failed
    source leaves its provider's shipped rows in place. Fetched exchange rates
    replace the shipped ones currency by currency. The shipped sources are
    parsed only once a source has answered (offline, refresh fails fast);
    ``shipped`` (the result of :func:`collect_rows`) saves parsing them again.
    """
    import httpx

    selected = _select(registry, names)
    currency, fx = load_fx(data_dir)
    stamp = f"fetched {(today or datetime.now(UTC).date()).isoformat()}"
    parsed = [shipped] if shipped is not None else []

    def shipped_sources() -> tuple[Sequence[OfferRow], Sequence[SourceReport]]:
        if not parsed:
            parsed.append(collect_rows(data_dir))
        return parsed[0]

    outcomes: list[SourceOutcome] = []
    fetched: dict[str, list[OfferRow]] = {}
    reports: list[SourceReport] = []
    for name in selected:
        source = registry[name](lambda: shipped_sources()[0])
        if source.name != name:
            raise CatalogError(f"refresh source registered as {name!r} calls itself {source.name}")
        try:
            if isinstance(source, RateSource):
                rates = source.fetch_rates(client, currency)
                if rates.get(currency) != 1:
                    raise SourceError(f"{name}: the rate of {currency} into itself is not 1")
                fx = {**fx, **rates}
                outcomes.append(SourceOutcome(name, "fx", ok=True, count=len(rates)))
                reports.append(SourceReport(f"refresh {name} exchange rates ({stamp})", len(rates)))
                continue
            got = source.fetch(client)
            if not got:
                raise SourceError(f"{name}: the source listed no accelerator offer")
            if any(r.provider != source.provider for r in got):
                raise SourceError(f"{name}: rows of another provider than {source.provider}")
        except (httpx.HTTPError, SourceError) as exc:
            kind: Literal["prices", "fx"] = "fx" if isinstance(source, RateSource) else "prices"
            provider = None if isinstance(source, RateSource) else source.provider
            outcomes.append(SourceOutcome(name, kind, False, 0, provider, describe_failure(exc)))
            continue
        fetched[source.provider] = [replace(r, source=f"{r.source} ({stamp})") for r in got]
        outcomes.append(SourceOutcome(name, "prices", True, len(got), source.provider))
        replaced = sum(
            1 for r in shipped_sources()[0] if r.provider == source.provider and r.accelerator
        )
        why = f"shipped {source.provider} accelerator offers replaced"
        reports.append(
            SourceReport(f"refresh {name} ({stamp})", len(got), Counter({why: replaced}))
        )
    if not reports:  # every source failed
        return RefreshResult(None, tuple(outcomes), ())
    rows, shipped_reports = shipped_sources()
    kept = [r for r in rows if not (r.accelerator and r.provider in fetched)]
    new_rows = dedupe([*kept, *(r for got in fetched.values() for r in got)])
    all_reports = (*shipped_reports, *reports)
    snapshot = CatalogSnapshot(
        offers=build_table(new_rows, load_regions(data_dir), fx),
        providers=load_providers(data_dir),
        jurisdictions=load_jurisdictions(data_dir),
        comparison_currency=currency,
        fx_rates=fx,
        built_from=tuple(r.source for r in all_reports),
    )
    return RefreshResult(snapshot, tuple(outcomes), all_reports)
