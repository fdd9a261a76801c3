"""Shipped facts against expectations written independently of the data and the code.

``test_snapshot.py`` checks that the snapshot is what the sources build; that
cannot see a wrong fact in the sources, since ``make snapshot`` carries it into
the snapshot. These tests hold both the fact tables (read by the catalog's
loaders) and the shipped snapshot to the hand-written tables of
``tests/facts.py``, and hold key offers to rows the test reads from the raw
source files itself.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from tests.facts import (
    ADEQUACY_FULL,
    ADEQUACY_PARTIAL,
    CLOUD_ACT,
    EEA,
    EEA_NOT_EU,
    EU_MEMBER_STATES,
    NEVER_EU_OR_EEA,
    PROVIDER_FACTS,
    REGION_COUNTRY,
)

from archipel.catalog import (
    DATA_DIR,
    load_jurisdictions,
    load_providers,
    load_regions,
    load_snapshot,
)
from archipel.catalog._registry import provider_facts
from archipel.core import CatalogSnapshot, CloudActExposure, Jurisdictions, ProviderFacts

_snapshot = cache(load_snapshot)
_providers = cache(load_providers)
_regions = cache(load_regions)


# Each fact is read twice: from the fact tables through the loaders (what a
# rebuild would ship) and from the packaged snapshot (what users get).
LAWS: dict[str, Callable[[], Jurisdictions]] = {
    "fact tables": load_jurisdictions,
    "shipped snapshot": lambda: _snapshot().jurisdictions,
}


@pytest.fixture(params=list(LAWS), scope="module")
def law(request: pytest.FixtureRequest) -> Jurisdictions:
    return LAWS[request.param]()


def test_eu_is_exactly_the_27_member_states(law: Jurisdictions) -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert law.eu == EU_MEMBER_STATES, (
        f"extra: {sorted(law.eu - EU_MEMBER_STATES)}, missing: {sorted(EU_MEMBER_STATES - law.eu)}"
    )


def test_eea_adds_iceland_liechtenstein_and_norway(law: Jurisdictions) -> None:
    assert law.eea_non_eu == EEA_NOT_EU
    assert law.eu_eea == EEA


GROUPS = [
    ("eu", EU_MEMBER_STATES),
    ("EU", EU_MEMBER_STATES),
    ("eea", EEA),
    ("EEA", EEA),
    ("eu_eea", EEA),
    ("adequacy", ADEQUACY_FULL),
    ("adequacy_partial", ADEQUACY_PARTIAL),
]


@pytest.mark.parametrize(("name", "countries"), GROUPS, ids=[g[0] for g in GROUPS])
def test_every_group_name_means_its_list(
    law: Jurisdictions, name: str, countries: frozenset[str]
) -> None:
    assert law.group(name) == countries


@pytest.mark.parametrize("name", ["FR", "europe", "eu27", "schengen"])
def test_a_name_that_is_no_group_is_not_one(law: Jurisdictions, name: str) -> None:
    assert law.group(name) is None


def test_adequacy_decisions(law: Jurisdictions) -> None:
    assert law.adequacy_full == ADEQUACY_FULL
    assert law.adequacy_partial == ADEQUACY_PARTIAL


def test_neighbours_are_never_in_the_eu_or_eea(law: Jurisdictions) -> None:
    assert not (law.eu_eea & NEVER_EU_OR_EEA)


REGIONS = sorted(REGION_COUNTRY.items())


@pytest.mark.parametrize(
    ("site", "country"), REGIONS, ids=[f"{p}/{r}={c}" for (p, r), c in REGIONS]
)
def test_region_country_in_the_fact_table(site: tuple[str, str], country: str) -> None:
    assert _regions()[site] == country


@pytest.mark.parametrize(
    ("site", "country"), REGIONS, ids=[f"{p}/{r}={c}" for (p, r), c in REGIONS]
)
def test_region_country_in_the_snapshot(
    snapshot: CatalogSnapshot, site: tuple[str, str], country: str
) -> None:
    found = {c.country for c in snapshot.offers.classes if (c.provider, c.region) == site}
    assert found == {country}


PROVIDERS: dict[str, Callable[[], dict[str, ProviderFacts]]] = {
    "fact tables": _providers,
    "shipped snapshot": lambda: dict(_snapshot().providers),
}


@pytest.mark.parametrize("source", list(PROVIDERS))
@pytest.mark.parametrize(("provider", "exposure"), sorted(CLOUD_ACT.items()))
def test_cloud_act_exposure(source: str, provider: str, exposure: str | None) -> None:
    facts = PROVIDERS[source]()[provider]
    assert facts.cloud_act == (None if exposure is None else CloudActExposure(exposure))


@pytest.mark.parametrize(("provider", "expected"), sorted(PROVIDER_FACTS.items()))
def test_facts_of_every_catalog_provider(
    snapshot: CatalogSnapshot, provider: str, expected: tuple[object, ...]
) -> None:
    facts = snapshot.provider(provider)
    exposure = None if facts.cloud_act is None else facts.cloud_act.value
    seen = (facts.marketplace, exposure, facts.secnumcloud, facts.certification("iso27001"))
    assert facts.registered
    assert seen == expected


def test_every_catalog_provider_has_independent_facts(snapshot: CatalogSnapshot) -> None:
    assert {c.provider for c in snapshot.offers.classes} == set(PROVIDER_FACTS)


@pytest.mark.parametrize(
    "cloud_act",
    [None, {}, {"exposure": None}, {"reason": "depends on the operator"}],
    ids=["no cloud_act block", "empty block", "exposure null", "reason only"],
)
def test_an_unknown_cloud_act_exposure_stays_unknown(cloud_act: object) -> None:
    """Unknown fails closed: a missing exposure is ``None``, never ``no``."""
    entry: dict[str, object] = {"id": "mystery", "kind": "neocloud"}
    if cloud_act is not None:
        entry["cloud_act"] = cloud_act
    assert provider_facts(entry).cloud_act is None


# Golden offers: each row is found by the test in the raw source file, with
# Python's csv module, and compared with the snapshot's offer of the same key.
@dataclass(frozen=True)
class Golden:
    file: str  # under the catalog data directory
    match: dict[str, str]  # raw column -> value that selects the row
    provider: str
    region: str
    zone: str
    instance: str
    accelerator: str  # the catalog's canonical name
    count: float
    currency: str
    price_column: str
    spot_column: str | None = None


GOLDEN = [
    Golden(
        "skypilot/hyperstack/vms.csv.gz",
        {"InstanceType": "n3-RTX-A4000x1", "Region": "NORWAY-1"},
        "hyperstack",
        "NORWAY-1",
        "",
        "n3-RTX-A4000x1",
        "RTXA4000",
        1,
        "USD",
        "Price",
        "SpotPrice",
    ),
    Golden(
        "skypilot/aws/vms.csv.gz",
        {"InstanceType": "p5.48xlarge", "Region": "us-east-1", "AvailabilityZone": "use1-az1"},
        "aws",
        "us-east-1",
        "use1-az1",
        "p5.48xlarge",
        "H100",
        8,
        "USD",
        "Price",
        "SpotPrice",
    ),
    Golden(
        "extra_offers/scaleway.csv",
        {"instance_type": "L4-1-24G", "region": "fr-par"},
        "scaleway",
        "fr-par",
        "fr-par-2",
        "L4-1-24G",
        "L4",
        1,
        "EUR",
        "price",
        "spot_price",
    ),
]


def _raw_row(path: Path, match: dict[str, str]) -> dict[str, str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:  # type: ignore[operator]
        rows = [r for r in csv.DictReader(handle) if all(r.get(k) == v for k, v in match.items())]
    assert len(rows) == 1, f"{path.name}: {len(rows)} rows match {match}"
    return rows[0]


def _price(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


@pytest.mark.parametrize("golden", GOLDEN, ids=[f"{g.provider}/{g.instance}" for g in GOLDEN])
def test_golden_offer_matches_its_raw_source_row(snapshot: CatalogSnapshot, golden: Golden) -> None:
    raw = _raw_row(DATA_DIR / golden.file, golden.match)
    block = snapshot.offers.accelerator_slice(golden.accelerator)
    offers = [snapshot.offers.offer(i) for i in range(block.start, block.stop)]
    (offer,) = [
        o
        for o in offers
        if (o.provider, o.region, o.zone, o.instance_type)
        == (golden.provider, golden.region, golden.zone, golden.instance)
    ]
    assert offer.accelerator == golden.accelerator
    assert offer.accelerator_count == golden.count
    assert offer.currency == golden.currency
    assert offer.price_per_hour == _price(raw[golden.price_column])
    spot = _price(raw.get(golden.spot_column or "", ""))
    assert offer.spot_price_per_hour == spot
    assert offer.country == REGION_COUNTRY[(golden.provider, golden.region)]
