"""The offer catalog: every purchasable GPU configuration, with its provider's facts.

The package ships its sources (SkyPilot-format price catalogs, curated offer
files with a source per row, and fact tables for providers, regions, exchange
rates and jurisdictions) and a snapshot built from them. ``load_snapshot()``
reads the snapshot in milliseconds; ``build_snapshot()`` rebuilds it.
"""

from archipel.catalog._build import (
    SKYPILOT_CLOUDS,
    SNAPSHOT_FILE,
    build_snapshot,
    build_table,
    collect_rows,
    load_snapshot,
    save_snapshot,
    snapshot_reports,
)
from archipel.catalog._query import offers_at, select_offers
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
    "DATA_DIR",
    "OfferRow",
    "SKYPILOT_CLOUDS",
    "SNAPSHOT_FILE",
    "SourceReport",
    "build_snapshot",
    "build_table",
    "collect_rows",
    "load_fx",
    "load_jurisdictions",
    "load_providers",
    "load_regions",
    "load_snapshot",
    "offers_at",
    "provider_facts",
    "save_snapshot",
    "select_offers",
    "snapshot_reports",
]
