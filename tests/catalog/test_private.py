"""Private offers: the file format, each way it can be wrong, and the merge into a snapshot."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.catalog import (
    build_table,
    concat_tables,
    load_regions,
    parse_private_offers,
    with_private_offers,
)
from archipel.catalog._sources import OfferRow
from archipel.core import MISSING, NANO, CatalogSnapshot, CloudActExposure, InputError

REGIONS = load_regions()

OFFER = """\
offers:
  - provider: coreweave
    region: US-EAST-04
    country: US
    instance: gd-8xh100ib-i128
    accelerator: h100
    count: 8
    gpu_memory_gib: 80
    price: 16.80
    currency: USD
    capacity: 512
    commitment: 3-year reserved
"""


def parse(text: str, snapshot: CatalogSnapshot) -> object:
    return parse_private_offers(textwrap.dedent(text), "offers.yaml", snapshot, REGIONS)


def test_a_valid_offer_is_one_row_with_its_exact_price(snapshot: CatalogSnapshot) -> None:
    parsed = parse_private_offers(OFFER, "offers.yaml", snapshot, REGIONS)
    (row,) = parsed.rows
    assert (row.provider, row.region, row.country) == ("coreweave", "US-EAST-04", "US")
    assert (row.instance_type, row.accelerator, row.accelerator_count) == (
        "gd-8xh100ib-i128",
        "H100",
        8.0,
    )
    assert row.gpu_memory_mib == 80 * 1024
    assert row.price == 16_800_000_000 and row.spot_price == MISSING
    assert row.currency == "USD"
    assert row.source == "private offer (offers.yaml): 3-year reserved"
    assert parsed.capacity == (("coreweave", "US-EAST-04", "H100", 512),)
    assert parsed.providers == {}


def test_a_registered_region_gives_the_country(snapshot: CatalogSnapshot) -> None:
    text = OFFER.replace("provider: coreweave", "provider: ovhcloud")
    text = text.replace("region: US-EAST-04\n    country: US\n", "region: GRA11\n")
    (row,) = parse_private_offers(text, "f", snapshot, REGIONS).rows
    assert row.country == "FR"


DECLARED = """\
offers:
  - {provider: acme-gpu, region: fra1, country: DE, instance: i1, accelerator: L4,
     count: 1, gpu_memory_gib: 24, price: "0.5", currency: EUR}
providers:
  - id: acme-gpu
    name: Acme GPU
    kind: neocloud
    hq_country: DE
    cloud_act: {exposure: "no", reason: German GmbH}
    certifications: {iso27001: true}
"""


def test_a_provider_outside_the_registry_brings_its_facts(snapshot: CatalogSnapshot) -> None:
    parsed = parse_private_offers(DECLARED, "f.yaml", snapshot, REGIONS)
    facts = parsed.providers["acme-gpu"]
    assert facts.hq_country == "DE" and facts.cloud_act is CloudActExposure.NO
    assert facts.certification("iso27001") is True
    assert facts.certification("bsi_c5") is None  # unstated stays unknown
    assert facts.vetted and facts.sources == ("declared in f.yaml",)


def _edit(old: str, new: str) -> str:
    assert old in OFFER
    return OFFER.replace(old, new)


ERRORS = [
    pytest.param("offers: []\n", "offers.yaml: `offers:` is empty", id="no offers"),
    pytest.param("- 1\n", "a mapping with an `offers:` list", id="not a mapping"),
    pytest.param("offers: [\n", "offers.yaml:2: not valid YAML", id="broken yaml"),
    pytest.param(OFFER + "extra: 1\n", "unknown key extra", id="unknown top-level key"),
    pytest.param(
        _edit("    price: 16.80\n", ""), "offers.yaml:2: offer price: required", id="no price"
    ),
    pytest.param(
        _edit("price: 16.80", "price: -1"),
        "offers.yaml:2: offer price: Input should be greater than 0",
        id="negative price",
    ),
    pytest.param(
        _edit("price: 16.80", 'price: "1.0000000001"'),
        "more than 9 decimals",
        id="price finer than a nano-unit",
    ),
    pytest.param(
        _edit("currency: USD", "currency: usd"),
        "offer currency: String should match",
        id="bad code",
    ),
    pytest.param(
        _edit("currency: USD", "currency: XYZ"), "no exchange rate for XYZ", id="unknown currency"
    ),
    pytest.param(
        _edit("count: 8", "count: 0"), "offer count: Input should be greater", id="zero count"
    ),
    pytest.param(
        _edit("gpu_memory_gib: 80", "gpu_memory: 80"),
        "offer gpu_memory: unknown field; remove it or check its spelling; "
        "gpu_memory_gib: required field is missing",
        id="misspelt field",
    ),
    pytest.param(
        _edit("accelerator: h100", "accelerator: H1OO"),
        "offers.yaml:2: unknown accelerator",
        id="unknown accelerator",
    ),
    pytest.param(
        _edit("    country: US\n", ""),
        "the country of coreweave US-EAST-04 is unknown; add `country: CC`",
        id="unknown region without a country",
    ),
    pytest.param(
        _edit("provider: coreweave", "provider: nobody"),
        "provider nobody is not in the registry; declare its facts",
        id="unknown provider without facts",
    ),
    pytest.param(
        OFFER.replace("provider: coreweave", "provider: ovhcloud").replace(
            "region: US-EAST-04", "region: GRA11"
        ),
        "ovhcloud GRA11 is in FR per the region table, not US",
        id="country contradicts the region table",
    ),
    pytest.param(
        OFFER.replace("provider: coreweave", "provider: hyperbolic").replace(
            "region: US-EAST-04", "region: default"
        ),
        "placeholder region of unknown country",
        id="placeholder region",
    ),
    pytest.param(
        _edit("price: 16.80", "price: 16.80\n    spot_price: 0"),
        "offers.yaml:2: offer spot_price: Input should be greater than 0",
        id="a free spot price",
    ),
    pytest.param(
        "offers:\n  - " + "[" * 5000 + "]" * 5000 + "\n",
        "offers.yaml: nested too deeply to be a private-offers file",
        id="nested too deeply",
    ),
    pytest.param(
        OFFER + OFFER.removeprefix("offers:\n"),
        "coreweave/US-EAST-04/gd-8xh100ib-i128 is listed twice",
        id="same offer twice",
    ),
    pytest.param(
        OFFER + "providers:\n  - {id: coreweave, name: C, kind: neocloud, hq_country: NL,"
        " cloud_act: {exposure: 'no'}}\n",
        "offers.yaml:14: provider coreweave is in the registry, whose facts apply",
        id="restating a registered provider",
    ),
    pytest.param(
        DECLARED.replace('    cloud_act: {exposure: "no", reason: German GmbH}\n', ""),
        "f.yaml:5: provider cloud_act: required field is missing",
        id="declared provider without cloud_act",
    ),
    pytest.param(
        DECLARED.replace('exposure: "no"', "reason2: x"),
        "cloud_act.exposure is required",
        id="declared provider without an exposure",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_each_mistake_is_one_input_error_naming_the_file(
    snapshot: CatalogSnapshot, text: str, message: str
) -> None:
    source = "f.yaml" if "f.yaml" in message else "offers.yaml"
    with pytest.raises(InputError) as caught:
        parse_private_offers(text, source, snapshot, REGIONS)
    assert message in str(caught.value)
    assert str(caught.value).startswith(source)
    assert "\n" not in str(caught.value)


def test_merged_offers_are_in_the_snapshot_with_their_provider(
    snapshot: CatalogSnapshot,
) -> None:
    merged = with_private_offers(
        snapshot, [parse_private_offers(DECLARED, "f.yaml", snapshot, REGIONS)]
    )
    assert len(merged.offers) == len(snapshot.offers) + 1
    assert merged.providers["acme-gpu"].hq_country == "DE"
    rows = merged.offers.accelerator_slice("L4")
    (mine,) = [
        merged.offers.offer(i)
        for i in range(rows.start, rows.stop)
        if merged.offers.offer(i).provider == "acme-gpu"
    ]
    assert (mine.region, mine.country, mine.price_per_hour, mine.currency) == (
        "fra1",
        "DE",
        Decimal("0.5"),
        "EUR",
    )
    assert merged.built_from[-1] == "f.yaml"


def test_one_offer_in_two_files_is_refused(snapshot: CatalogSnapshot) -> None:
    once = parse_private_offers(OFFER, "a.yaml", snapshot, REGIONS)
    again = parse_private_offers(OFFER, "b.yaml", snapshot, REGIONS)
    with pytest.raises(InputError, match="is in two private-offers files"):
        with_private_offers(snapshot, [once, again])


SITES = {("aws", "us-east-1"): "US", ("ovhcloud", "GRA11"): "FR", ("acme", "fra1"): "DE"}
RATES = {"USD": Decimal(1), "EUR": Decimal("1.5")}
prices = st.sampled_from([MISSING, NANO, 2 * NANO, 3 * NANO])
rows = st.lists(
    st.builds(
        OfferRow,
        provider=st.just(""),
        region=st.just(""),
        zone=st.sampled_from(["", "z-a", "z-b"]),
        instance_type=st.sampled_from(["i-1", "i-2"]),
        accelerator=st.sampled_from(["", "H100", "L4", "B300"]),
        accelerator_count=st.sampled_from([0.0, 1.0, 8.0]),
        gpu_memory_mib=st.sampled_from([0, 80 * 1024]),
        vcpus=st.none() | st.just(8.0),
        memory_gib=st.none(),
        price=prices,
        spot_price=prices,
        currency=st.sampled_from(["USD", "EUR"]),
        source=st.sampled_from(["public", "private"]),
    ),
    max_size=10,
)


@st.composite
def placed_rows(draw: st.DrawFn) -> list[OfferRow]:
    out = []
    for row in draw(rows):
        provider, region = draw(st.sampled_from(sorted(SITES)))
        fields = {name: getattr(row, name) for name in OfferRow.__slots__}
        out.append(OfferRow(**{**fields, "provider": provider, "region": region}))
    return out


@settings(max_examples=examples(60))
@given(public=placed_rows(), private=placed_rows())
def test_merging_two_tables_is_building_one_from_all_rows(
    public: list[OfferRow], private: list[OfferRow]
) -> None:
    """The merge is exactly the build of the union: same rows, same order, same tables."""
    merged = concat_tables(build_table(public, SITES, RATES), build_table(private, SITES, RATES))
    whole = build_table(public + private, SITES, RATES)
    assert merged.classes == whole.classes
    assert merged.accelerators == whole.accelerators
    assert merged.strings == whole.strings
    assert np.array_equal(merged.accel_start, whole.accel_start)
    for name in whole.columns:
        assert np.array_equal(merged.col(name), whole.col(name), equal_nan=True), name
