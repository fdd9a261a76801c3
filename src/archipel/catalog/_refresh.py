"""Refresh the catalog from providers' public price sources, when online.

A *price source* reads one provider's public price list and returns offer rows
that replace the shipped accelerator offers of that provider; a *rate source*
returns exchange rates into the comparison currency. Sources live in one
explicit table, :data:`SOURCES` (name -> factory). :func:`refresh` runs the
selected sources through one injected :class:`httpx.Client` (tests give it an
``httpx.MockTransport``), keeps the shipped rows of every provider whose source
failed, and rebuilds the offer table. A source that fails is reported as data;
only faults of Archipel itself are raised.

Exceptions: see :mod:`archipel.catalog._refresh_base` (``SourceError``).
Each source has its own module: ``_refresh_azure``, ``_refresh_ovh``, ``_refresh_ecb``.

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

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from archipel.catalog._build import build_table, collect_rows
from archipel.catalog._refresh_azure import AZURE_PRICES_URL, AzureRetailPrices, azure_rows
from archipel.catalog._refresh_base import (
    PriceSource,
    RateSource,
    ShippedRows,
    SourceError,
    SourceFactory,
    source_registry,
)
from archipel.catalog._refresh_ecb import ECB_DAILY_URL, EcbReferenceRates, parse_ecb, rates_into
from archipel.catalog._refresh_ovh import OVH_CATALOG_URL, OvhCloudCatalog, ovh_rows
from archipel.catalog._registry import (
    DATA_DIR,
    load_fx,
    load_jurisdictions,
    load_providers,
    load_regions,
)
from archipel.catalog._sources import OfferRow, SourceReport, dedupe
from archipel.core import CatalogError, CatalogSnapshot, InputError

if TYPE_CHECKING:  # httpx is imported where a fetch runs: ~0.1 s that `archipel plan` skips
    import httpx

__all__ = [
    "AZURE_PRICES_URL",
    "ECB_DAILY_URL",
    "OVH_CATALOG_URL",
    "SOURCES",
    "AzureRetailPrices",
    "EcbReferenceRates",
    "OvhCloudCatalog",
    "PriceSource",
    "RateSource",
    "RefreshResult",
    "ShippedRows",
    "SourceError",
    "SourceFactory",
    "SourceOutcome",
    "azure_rows",
    "describe_failure",
    "ovh_rows",
    "parse_ecb",
    "rates_into",
    "refresh",
    "source_registry",
]


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


@dataclass
class _Run:
    """One refresh in progress: the shipped rows (parsed lazily) and what each source gave."""

    data_dir: Path
    currency: str
    fx: dict[str, Decimal]
    stamp: str
    parsed: list[tuple[Sequence[OfferRow], Sequence[SourceReport]]]
    outcomes: list[SourceOutcome] = field(default_factory=list)
    fetched: dict[str, list[OfferRow]] = field(default_factory=dict)
    reports: list[SourceReport] = field(default_factory=list)

    def shipped(self) -> tuple[Sequence[OfferRow], Sequence[SourceReport]]:
        """The shipped sources, parsed on first use (offline, refresh fails before parsing)."""
        if not self.parsed:
            self.parsed.append(collect_rows(self.data_dir))
        return self.parsed[0]

    def rates(self, name: str, rates: Mapping[str, Decimal]) -> None:
        if rates.get(self.currency) != 1:
            raise SourceError(f"{name}: the rate of {self.currency} into itself is not 1")
        self.fx = {**self.fx, **rates}
        self.outcomes.append(SourceOutcome(name, "fx", ok=True, count=len(rates)))
        self.reports.append(
            SourceReport(f"refresh {name} exchange rates ({self.stamp})", len(rates))
        )

    def prices(self, name: str, source: PriceSource, got: Sequence[OfferRow]) -> None:
        if not got:
            raise SourceError(f"{name}: the source listed no accelerator offer")
        if any(r.provider != source.provider for r in got):
            raise SourceError(f"{name}: rows of another provider than {source.provider}")
        stamped = [replace(r, source=f"{r.source} ({self.stamp})") for r in got]
        self.fetched[source.provider] = stamped
        self.outcomes.append(SourceOutcome(name, "prices", True, len(got), source.provider))
        replaced = sum(
            1 for r in self.shipped()[0] if r.provider == source.provider and r.accelerator
        )
        why = f"shipped {source.provider} accelerator offers replaced"
        self.reports.append(
            SourceReport(f"refresh {name} ({self.stamp})", len(got), Counter({why: replaced}))
        )

    def failed(self, name: str, source: PriceSource | RateSource, why: str) -> None:
        if isinstance(source, RateSource):
            self.outcomes.append(SourceOutcome(name, "fx", False, 0, None, why))
        else:
            self.outcomes.append(SourceOutcome(name, "prices", False, 0, source.provider, why))

    def snapshot(self) -> CatalogSnapshot:
        """The shipped rows with each refreshed provider's accelerator offers replaced."""
        rows, shipped_reports = self.shipped()
        kept = [r for r in rows if not (r.accelerator and r.provider in self.fetched)]
        new_rows = dedupe([*kept, *(r for got in self.fetched.values() for r in got)])
        return CatalogSnapshot(
            offers=build_table(new_rows, load_regions(self.data_dir), self.fx),
            providers=load_providers(self.data_dir),
            jurisdictions=load_jurisdictions(self.data_dir),
            comparison_currency=self.currency,
            fx_rates=self.fx,
            built_from=tuple(r.source for r in (*shipped_reports, *self.reports)),
        )


def _fetch(run: _Run, name: str, source: PriceSource | RateSource, client: httpx.Client) -> None:
    """Run one source; its failure is recorded as data, never raised."""
    import httpx

    try:
        if isinstance(source, RateSource):
            run.rates(name, source.fetch_rates(client, run.currency))
        else:
            run.prices(name, source, source.fetch(client))
    except (httpx.HTTPError, SourceError) as exc:
        run.failed(name, source, describe_failure(exc))


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
    selected = _select(registry, names)
    currency, fx = load_fx(data_dir)
    stamp = f"fetched {(today or datetime.now(UTC).date()).isoformat()}"
    run = _Run(data_dir, currency, fx, stamp, [shipped] if shipped is not None else [])
    for name in selected:
        source = registry[name](lambda: run.shipped()[0])
        if source.name != name:
            raise CatalogError(f"refresh source registered as {name!r} calls itself {source.name}")
        _fetch(run, name, source, client)
    if not run.reports:  # every source failed
        return RefreshResult(None, tuple(run.outcomes), ())
    all_reports = (*run.shipped()[1], *run.reports)
    return RefreshResult(run.snapshot(), tuple(run.outcomes), all_reports)
