"""Azure's Retail Prices API: GPU VM families, Linux pay-as-you-go and Spot prices.

The API states no accelerators, so each SKU's accelerators, vCPUs and memory
come from the shipped Azure rows of the same instance type; a SKU the shipped
catalog does not know is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archipel.catalog._refresh_base import (
    ShippedRows,
    ShippedSpec,
    SourceError,
    as_list,
    as_mapping,
    decimal_nano,
    json_body,
    shipped_specs,
)
from archipel.catalog._sources import OfferRow
from archipel.core import MISSING

if TYPE_CHECKING:
    import httpx

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


#: (sku, region, spot) -> (preference, price in nano-units, currency)
_Meters = dict[tuple[str, str, bool], tuple[tuple[bool, str, int], int, str]]


def _wanted(item: Mapping[str, Any], specs: Mapping[str, ShippedSpec]) -> bool:
    """A Linux pay-as-you-go or Spot hourly meter of a known GPU SKU in a region."""
    return bool(
        str(item.get("armSkuName") or "").strip() in specs
        and str(item.get("armRegionName") or "").strip()
        and item.get("type") == "Consumption"
        and item.get("unitOfMeasure") == "1 Hour"
        and not str(item.get("productName") or "").rstrip().endswith("Windows")
        and "Low Priority" not in str(item.get("skuName") or "")
    )


def _best_meters(items: Iterable[object], specs: Mapping[str, ShippedSpec]) -> _Meters:
    best: _Meters = {}
    for n, raw in enumerate(items):
        item = as_mapping(raw, f"Azure item {n}")
        if not _wanted(item, specs):
            continue
        sku = str(item["armSkuName"]).strip()
        region = str(item["armRegionName"]).strip()
        price = decimal_nano(item.get("retailPrice"), f"Azure {sku} in {region}")
        currency = str(item.get("currencyCode") or "USD").upper()
        preference = (
            item.get("isPrimaryMeterRegion") is not False,
            str(item.get("effectiveStartDate") or ""),
            -price,
        )
        key = (sku, region, "Spot" in str(item.get("skuName") or ""))
        if key not in best or preference > best[key][0]:
            best[key] = (preference, price, currency)
    return best


def azure_rows(items: Iterable[object], shipped: Sequence[OfferRow]) -> list[OfferRow]:
    """Offer rows from Retail Prices API items: Linux pay-as-you-go and Spot, per SKU and region.

    Windows meters (``productName`` ends in "Windows") and Low Priority meters are
    other ways to buy the same VM and are skipped; a Spot meter (``skuName``
    contains "Spot") becomes the row's spot price. Where the API lists one
    meter twice, the primary-region meter with the latest ``effectiveStartDate``
    wins, then the lower price. A SKU without shipped accelerator rows is skipped.
    """
    specs = shipped_specs(shipped, "azure")
    best = _best_meters(items, specs)
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
            body = as_mapping(json_body(response, f"Azure page {page}"), f"Azure page {page}")
            items += as_list(body.get("Items"), f"Azure page {page}: Items")
            link = body.get("NextPageLink")
            if not link:
                return azure_rows(items, self.shipped())
            url = httpx.URL(str(link))
            if url.host != httpx.URL(AZURE_PRICES_URL).host:
                raise SourceError(f"Azure NextPageLink leaves {AZURE_PRICES_URL}: {link}")
            response = client.get(url)
        raise SourceError(f"Azure: more than {_AZURE_MAX_PAGES} pages; stopped following links")
