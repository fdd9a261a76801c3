"""Golden rows: the shipped snapshot says what the raw source files say, one row per offer.

Each test reads the raw files itself (csv, gzip, yaml from the standard
library and PyYAML), so the expected values never come from the parsers under
test. The providers covered are those whose rows were once wrong: Scaleway
(one offer twice, in two currencies), Seeweb (rows with no region ranking
first) and GPU memory shown in fractions of a GiB.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import yaml

from archipel.catalog import DATA_DIR
from archipel.core import CatalogSnapshot, Offer


def raw_rows(relative: str) -> list[dict[str, str]]:
    path = DATA_DIR / relative
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def offers_of(snapshot: CatalogSnapshot, provider: str) -> list[Offer]:
    return [
        snapshot.offers.offer(i)
        for i in range(len(snapshot.offers))
        if snapshot.offers.classes[int(snapshot.offers.col("class_idx")[i])].provider == provider
    ]


@pytest.fixture(scope="module")
def scaleway(snapshot: CatalogSnapshot) -> list[Offer]:
    return offers_of(snapshot, "scaleway")


@pytest.fixture(scope="module")
def seeweb(snapshot: CatalogSnapshot) -> list[Offer]:
    return offers_of(snapshot, "seeweb")


def test_every_curated_scaleway_row_is_one_offer_in_euros(scaleway: list[Offer]) -> None:
    for raw in raw_rows("extra_offers/scaleway.csv"):
        same = [
            o
            for o in scaleway
            if (o.region, o.instance_type) == (raw["region"], raw["instance_type"])
        ]
        assert len(same) == 1, f"{raw['region']}/{raw['instance_type']}: {len(same)} rows"
        (offer,) = same
        assert offer.price_per_hour == Decimal(raw["price"])
        assert offer.currency == raw["currency"] == "EUR"
        assert offer.gpu_memory_gib == float(raw["gpu_memory_gib"])


def test_the_scaleway_price_catalog_keeps_only_what_the_curated_file_lacks(
    scaleway: list[Offer],
) -> None:
    curated = {(r["region"], r["instance_type"]) for r in raw_rows("extra_offers/scaleway.csv")}
    for raw in raw_rows("skypilot/scaleway/vms.csv.gz"):
        key = (raw["Region"], raw["InstanceType"])
        rows = [
            o
            for o in scaleway
            if (o.region, o.instance_type, o.zone) == (*key, raw["AvailabilityZone"])
        ]
        if key in curated:
            assert rows and all(o.source.startswith("https://www.scaleway.com") for o in rows)
        else:
            (offer,) = rows
            assert (offer.price_per_hour, offer.currency) == (Decimal(raw["Price"]), "EUR")


def test_no_scaleway_offer_appears_twice(scaleway: list[Offer]) -> None:
    counts = Counter((o.region, o.zone, o.instance_type) for o in scaleway)
    assert [k for k, n in counts.items() if n > 1] == []


def test_the_scaleway_h100_has_80_gib_not_the_drivers_figure(scaleway: list[Offer]) -> None:
    h100 = [o for o in scaleway if o.instance_type == "H100-1-80G"]
    assert h100 and {o.gpu_memory_gib for o in h100} == {80.0}


def test_every_gpu_memory_is_a_whole_number_of_gib(snapshot: CatalogSnapshot) -> None:
    assert not (snapshot.offers.col("gpu_memory_mib") % 1024).any()


def seeweb_countries() -> dict[str, str]:
    with (DATA_DIR / "regions.yaml").open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    regions = doc["providers"]["seeweb"]["regions"]
    return {name: info["country"] for name, info in regions.items()}


def test_every_seeweb_row_with_a_region_is_kept_in_its_country(seeweb: list[Offer]) -> None:
    countries = seeweb_countries()
    for raw in raw_rows("skypilot/seeweb/vms.csv.gz"):
        if not raw["Region"]:
            continue
        (offer,) = [
            o for o in seeweb if (o.region, o.instance_type) == (raw["Region"], raw["InstanceType"])
        ]
        assert offer.country == countries[raw["Region"]]
        assert offer.price_per_hour == Decimal(raw["Price"])


def test_seeweb_rows_without_a_region_are_not_offers(seeweb: list[Offer]) -> None:
    placed = {o.instance_type for o in seeweb}
    nowhere = {
        raw["InstanceType"] for raw in raw_rows("skypilot/seeweb/vms.csv.gz") if not raw["Region"]
    }
    assert nowhere, "the source still has rows without a region"
    assert nowhere.isdisjoint(placed)
    assert all(o.region and o.country for o in seeweb)
