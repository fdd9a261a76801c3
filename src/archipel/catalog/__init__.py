"""The offer catalog: every purchasable GPU configuration, with its provider's facts.

The package ships its sources (SkyPilot-format price catalogs, curated offer
files with a source per row, and fact tables for providers, regions, exchange
rates and jurisdictions) and a snapshot built from them. ``load_snapshot()``
reads the snapshot in milliseconds; ``build_snapshot()`` rebuilds it; ``refresh()``
re-reads providers' public price sources when online. ``parse_private_offers()``
and ``with_private_offers()`` add a buyer's own negotiated offers to a snapshot.
"""

from archipel.catalog._build import (
    SKYPILOT_CLOUDS,
    SNAPSHOT_FILE,
    build_snapshot,
    build_table,
    collect_rows,
    load_snapshot,
    save_snapshot,
)
from archipel.catalog._merge import concat_tables, with_private_offers
from archipel.catalog._private import PrivateOffer, PrivateOffers, parse_private_offers
from archipel.catalog._query import offers_at, select_offers
from archipel.catalog._refresh import (
    SOURCES,
    AzureRetailPrices,
    EcbReferenceRates,
    OvhCloudCatalog,
    PriceSource,
    RateSource,
    RefreshResult,
    ShippedRows,
    SourceError,
    SourceFactory,
    SourceOutcome,
    refresh,
    source_registry,
)
from archipel.catalog._registry import (
    DATA_DIR,
    load_fx,
    load_jurisdictions,
    load_providers,
    load_regions,
    provider_facts,
)
from archipel.catalog._sources import OfferRow, SourceReport

__all__ = [
    "AzureRetailPrices",
    "DATA_DIR",
    "EcbReferenceRates",
    "OfferRow",
    "OvhCloudCatalog",
    "PriceSource",
    "PrivateOffer",
    "PrivateOffers",
    "RateSource",
    "RefreshResult",
    "SKYPILOT_CLOUDS",
    "SNAPSHOT_FILE",
    "SOURCES",
    "ShippedRows",
    "SourceError",
    "SourceFactory",
    "SourceOutcome",
    "SourceReport",
    "build_snapshot",
    "build_table",
    "collect_rows",
    "concat_tables",
    "load_fx",
    "load_jurisdictions",
    "load_providers",
    "load_regions",
    "load_snapshot",
    "offers_at",
    "parse_private_offers",
    "provider_facts",
    "refresh",
    "save_snapshot",
    "select_offers",
    "source_registry",
    "with_private_offers",
]
