"""The shipped snapshot: reproducible from its sources, complete, and explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from archipel.catalog import (
    DATA_DIR,
    SKYPILOT_CLOUDS,
    SNAPSHOT_FILE,
    build_snapshot,
    load_snapshot,
    save_snapshot,
)
from archipel.core import MISSING, CatalogSnapshot


def test_shipped_snapshot_is_exactly_what_the_sources_build(tmp_path: Path) -> None:
    """Nobody edits numbers by hand: rebuilding from the sources gives the same bytes."""
    snapshot, reports = build_snapshot()
    rebuilt = tmp_path / "snapshot.npz"
    save_snapshot(snapshot, rebuilt, reports)
    assert rebuilt.read_bytes() == SNAPSHOT_FILE.read_bytes(), (
        "the packaged snapshot is stale: run `make snapshot` and commit it"
    )


def test_snapshot_round_trips(tmp_path: Path, snapshot: CatalogSnapshot) -> None:
    path = tmp_path / "s.npz"
    save_snapshot(snapshot, path)
    again = load_snapshot(path)
    assert len(again.offers) == len(snapshot.offers)
    assert again.providers == snapshot.providers
    assert again.jurisdictions == snapshot.jurisdictions
    for name in snapshot.offers.columns:
        assert np.array_equal(again.offers.col(name), snapshot.offers.col(name), equal_nan=True)


def test_all_fourteen_sources_and_every_cloud_are_loaded(snapshot: CatalogSnapshot) -> None:
    providers = {c.provider for c in snapshot.offers.classes}
    assert set(SKYPILOT_CLOUDS.values()) <= providers
    assert len(snapshot.offers) > 85_000


def test_every_catalog_provider_has_a_registry_entry(snapshot: CatalogSnapshot) -> None:
    sellers = {c.provider for c in snapshot.offers.classes}
    assert sellers <= set(snapshot.providers)


def test_only_placeholder_regions_lack_a_country(snapshot: CatalogSnapshot) -> None:
    unknown = {(c.provider, c.region) for c in snapshot.offers.classes if c.country is None}
    assert unknown <= {("hyperbolic", "default"), ("ovhcloud", "")}


def test_offers_are_sorted_by_accelerator_so_each_model_is_one_slice(
    snapshot: CatalogSnapshot,
) -> None:
    accel = snapshot.offers.col("accel_idx")
    assert np.all(np.diff(accel) >= 0)
    for i, name in enumerate(snapshot.offers.accelerators):
        s = snapshot.offers.accelerator_slice(name)
        assert np.all(accel[s] == i)


def test_every_offer_has_a_price_in_some_market(snapshot: CatalogSnapshot) -> None:
    on_demand = snapshot.offers.col("price")
    spot = snapshot.offers.col("spot_price")
    assert np.all((on_demand != MISSING) | (spot != MISSING))
    assert np.all(on_demand >= MISSING) and np.all(spot >= MISSING)


def test_eur_offers_rank_in_usd_at_the_recorded_rate(snapshot: CatalogSnapshot) -> None:
    offers = snapshot.offers
    eur = offers.strings.index("EUR")
    rows = np.nonzero(offers.col("currency_idx") == eur)[0]
    assert len(rows) > 0
    rate = snapshot.fx_rates["EUR"]
    for r in rows[:20]:
        assert offers.col("cmp_price")[r] == round(offers.col("price")[r] * rate)


def test_added_offers_cover_the_required_families(snapshot: CatalogSnapshot) -> None:
    def has(provider: str, accelerator: str) -> bool:
        s = snapshot.offers.accelerator_slice(accelerator)
        cls = snapshot.offers.col("class_idx")[s]
        return any(snapshot.offers.classes[c].provider == provider for c in set(cls.tolist()))

    for provider, accelerator in [
        ("aws", "Trainium"),
        ("aws", "Inferentia2"),
        ("aws", "L4"),
        ("aws", "L40S"),
        ("aws", "A10G"),
        ("ovhcloud", "H100"),
        ("ovhcloud", "L40S"),
        ("scaleway", "H100"),
        ("scaleway", "L40S"),
    ]:
        assert has(provider, accelerator), (provider, accelerator)


def test_source_files_are_shipped_with_their_provenance() -> None:
    assert (DATA_DIR / "skypilot" / "SOURCE.md").is_file()
    assert (DATA_DIR / "providers.README.md").is_file()
    for cloud in SKYPILOT_CLOUDS:
        assert (DATA_DIR / "skypilot" / cloud / "vms.csv.gz").is_file()
