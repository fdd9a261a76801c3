"""The engine on small made-up catalogs full of ties, against the brute-force reference.

The shipped catalog has few exact ties where they matter; these catalogs have
almost nothing else: a handful of prices, two zones, three instance types, two
currencies. The order is specified independently of the engine: cheapest total
first, then provider, region, instance type and zone; one placement per
provider, region, instance type and market.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.facts import REGION_COUNTRY
from tests.profiles import examples

from archipel.catalog import build_table
from archipel.catalog._sources import OfferRow
from archipel.core import (
    MISSING,
    NANO,
    AcceleratorRequest,
    CatalogSnapshot,
    InputError,
    Reason,
    UnknownAcceleratorError,
)
from archipel.placement import PlacementRequest, Planner
from archipel.policy import Policy, default_policy

from .reference import Priced, feasible

SITES = {
    ("aws", "us-east-1"): REGION_COUNTRY[("aws", "us-east-1")],
    ("aws", "eu-west-3"): REGION_COUNTRY[("aws", "eu-west-3")],
    ("gcp", "europe-west6"): REGION_COUNTRY[("gcp", "europe-west6")],
    ("scaleway", "fr-par"): REGION_COUNTRY[("scaleway", "fr-par")],
    ("ovhcloud", "GRA"): REGION_COUNTRY[("ovhcloud", "GRA")],
    ("hyperstack", "NORWAY-1"): REGION_COUNTRY[("hyperstack", "NORWAY-1")],
    ("vast", "IS-Iceland"): "IS",  # Vast states the host's country in the region label
}
RATES = {"USD": Decimal(1), "EUR": Decimal("1.5")}  # exact in nano-units: ties stay ties
PRICES = [MISSING, 1 * NANO, 2 * NANO, 3 * NANO]


class TinyCatalog:
    """A made-up snapshot with a short repr (failure reports stay readable)."""

    def __init__(self, rows: list[OfferRow], shipped: CatalogSnapshot) -> None:
        self.rows = rows
        self.snapshot = CatalogSnapshot(
            offers=build_table(rows, SITES, RATES),
            providers=shipped.providers,
            jurisdictions=shipped.jurisdictions,
            comparison_currency="USD",
            fx_rates=RATES,
        )

    def __repr__(self) -> str:
        return f"TinyCatalog({len(self.rows)} rows: {[_short(r) for r in self.rows]})"


def _short(r: OfferRow) -> str:
    price = "-" if r.price == MISSING else r.price // NANO
    spot = "-" if r.spot_price == MISSING else r.spot_price // NANO
    return (
        f"{r.provider}/{r.region}/{r.zone}/{r.instance_type} "
        f"{r.accelerator}:{r.accelerator_count:g} {price}/{spot} {r.currency}"
    )


rows = st.builds(
    OfferRow,
    provider=st.just(""),
    region=st.just(""),
    zone=st.sampled_from(["z-a", "z-b"]),
    instance_type=st.sampled_from(["i-1", "i-2", "i-3"]),
    accelerator=st.sampled_from(["H100", "L4"]),
    accelerator_count=st.sampled_from([1.0, 8.0]),
    gpu_memory_mib=st.just(0),
    vcpus=st.none(),
    memory_gib=st.none(),
    price=st.sampled_from(PRICES),
    spot_price=st.sampled_from(PRICES),
    currency=st.sampled_from(["USD", "EUR"]),
    source=st.just("test"),
)


@st.composite
def offer_rows(draw: st.DrawFn, min_size: int = 1) -> list[OfferRow]:
    out = []
    for row in draw(st.lists(rows, min_size=min_size, max_size=12)):
        provider, region = draw(st.sampled_from(sorted(SITES)))
        out.append(OfferRow(**{**_fields(row), "provider": provider, "region": region}))
    return out


def _fields(row: OfferRow) -> dict[str, object]:
    return {name: getattr(row, name) for name in OfferRow.__slots__}


COUNTRY_CHOICES = [(), ("EU",), ("EEA",), ("FR",), ("NO", "US"), ("CH",), ("EU", "IS")]
CLASSES = ["public", "internal", "confidential", "personal", "health", "sovereign"]


def expected_order(found: list[Priced], top: int) -> list[tuple[object, ...]]:
    """The specification of the ranking, written without the engine."""
    ordered = sorted(
        found,
        key=lambda p: (
            p.total_usd,
            p.offer.provider,
            p.offer.region,
            p.offer.instance_type,
            p.offer.zone,
        ),
    )
    out: list[tuple[object, ...]] = []
    seen: set[tuple[str, str, str, bool]] = set()
    for p in ordered:
        market = (p.offer.provider, p.offer.region, p.offer.instance_type, p.spot)
        if market in seen:
            continue
        seen.add(market)
        out.append((*market, p.offer.zone, p.total_usd))
    return out[:top]


#: the accelerators a request asks for: one to three (model, count) alternatives
WANTED = st.lists(
    st.tuples(st.sampled_from(["H100", "L4"]), st.sampled_from([1.0, 8.0])),
    min_size=1,
    max_size=3,
    unique=True,
)


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=offer_rows(),
    wanted=WANTED,
    data_class=st.sampled_from(CLASSES),
    countries=st.sampled_from(COUNTRY_CHOICES),
    spot=st.booleans(),
    nodes=st.integers(1, 3),
    top=st.integers(1, 8),
    cap=st.sampled_from([None, Decimal(3), Decimal("4.5")]),
)
def test_cheapest_first_with_ties_broken_by_provider_region_instance_zone(
    snapshot: CatalogSnapshot,
    policy: Policy,
    rows: list[OfferRow],
    wanted: list[tuple[str, float]],
    data_class: str,
    countries: tuple[str, ...],
    spot: bool,
    nodes: int,
    top: int,
    cap: Decimal | None,
) -> None:
    tiny = TinyCatalog(rows, snapshot)
    present = {r.accelerator for r in rows}
    accels = tuple(AcceleratorRequest(m, c) for m, c in wanted if m in present)
    if not accels:
        return
    request = PlacementRequest(
        accelerators=accels,
        data_class=data_class,
        nodes=nodes,
        spot=spot,
        hours=Decimal(2),
        countries=countries,
        max_price_per_hour=cap,
    )
    plan = Planner(tiny.snapshot, policy).plan(request, top=top)
    offers = [tiny.snapshot.offers.offer(i) for i in range(len(tiny.snapshot.offers))]
    found = feasible(tiny.snapshot, offers, request)
    got = [
        (
            p.offer.provider,
            p.offer.region,
            p.offer.instance_type,
            p.spot,
            p.offer.zone,
            p.comparison_total,
        )
        for p in plan.placements
    ]
    assert got == expected_order(found, top), repr(tiny)
    assert plan.feasible == bool(found)
    rejected = sum(r.count for r in plan.rejections)
    assert rejected + plan.trace.feasible_offers == len(rows)


TIES = [
    # rows: (provider, region, zone, instance, accelerator, count, price); expected order
    (
        "equal prices: provider before region",
        [
            ("scaleway", "fr-par", "z-a", "i-1", "L4", 1.0, 2),
            ("aws", "us-east-1", "z-a", "i-1", "L4", 1.0, 2),
        ],
        ["aws/us-east-1/i-1/z-a", "scaleway/fr-par/i-1/z-a"],
    ),
    (
        "equal prices at one site: instance type before zone",
        [
            ("aws", "us-east-1", "z-a", "i-2", "L4", 1.0, 2),
            ("aws", "us-east-1", "z-b", "i-1", "L4", 1.0, 2),
        ],
        ["aws/us-east-1/i-1/z-b", "aws/us-east-1/i-2/z-a"],
    ),
    (
        "equal prices across alternatives: provider before accelerator",
        [
            ("aws", "us-east-1", "z-a", "i-1", "L4", 1.0, 2),
            ("gcp", "europe-west6", "z-a", "i-2", "H100", 1.0, 2),
            ("aws", "eu-west-3", "z-a", "i-3", "H100", 8.0, 2),
        ],
        ["aws/eu-west-3/i-3/z-a", "aws/us-east-1/i-1/z-a", "gcp/europe-west6/i-2/z-a"],
    ),
    (
        "a cheaper offer beats every tie-break",
        [
            ("aws", "us-east-1", "z-a", "i-1", "L4", 1.0, 3),
            ("vast", "IS-Iceland", "z-b", "i-3", "L4", 1.0, 2),
        ],
        ["vast/IS-Iceland/i-3/z-b", "aws/us-east-1/i-1/z-a"],
    ),
]


@pytest.mark.parametrize(("name", "table", "order"), TIES, ids=[t[0] for t in TIES])
def test_ties_break_the_same_way_every_time(
    snapshot: CatalogSnapshot,
    name: str,
    table: list[tuple[str, str, str, str, str, float, int]],
    order: list[str],
) -> None:
    rows = [
        OfferRow(p, r, z, i, a, c, 0, None, None, price * NANO, MISSING, "USD", "test")
        for p, r, z, i, a, c, price in table
    ]
    tiny = TinyCatalog(rows, snapshot)
    models = sorted({(a, c) for *_, a, c, _ in table})
    request = PlacementRequest(
        accelerators=tuple(AcceleratorRequest(m, c) for m, c in models), data_class="public"
    )
    plan = Planner(tiny.snapshot, default_policy()).plan(request, top=10)
    got = [
        f"{p.offer.provider}/{p.offer.region}/{p.offer.instance_type}/{p.offer.zone}"
        for p in plan.placements
    ]
    assert got == order


def test_an_empty_catalog_knows_no_accelerator(snapshot: CatalogSnapshot) -> None:
    tiny = TinyCatalog([], snapshot)
    request = PlacementRequest(accelerators=(AcceleratorRequest("H100", 1.0),))
    with pytest.raises(UnknownAcceleratorError):
        Planner(tiny.snapshot, default_policy()).plan(request)


def test_a_catalog_of_one_offer_plans_it(snapshot: CatalogSnapshot) -> None:
    row = OfferRow(
        "scaleway", "fr-par", "z-a", "i-1", "L4", 1.0, 0, None, None, 2 * NANO, MISSING, "EUR", "t"
    )
    tiny = TinyCatalog([row], snapshot)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), hours=Decimal(10))
    plan = Planner(tiny.snapshot, default_policy()).plan(request)
    (only,) = plan.placements
    assert only.comparison_total == Decimal(30)  # 2 EUR x 10 h x 1.5
    assert plan.trace.offers_seen == 1 and not plan.rejections


EXPLAINED = [
    OfferRow(
        "scaleway", "fr-par", "z-a", "i-1", "L4", 1.0, 0, None, None, 2 * NANO, MISSING, "EUR", "t"
    ),
    OfferRow(
        "ovhcloud", "GRA", "z-a", "i-3", "L4", 1.0, 0, None, None, 7 * NANO, MISSING, "USD", "t"
    ),
    OfferRow(
        "aws", "us-east-1", "z-a", "i-1", "L4", 1.0, 0, None, None, 1 * NANO, MISSING, "USD", "t"
    ),
    OfferRow(
        "aws", "us-east-1", "z-b", "i-1", "L4", 1.0, 0, None, None, 3 * NANO, MISSING, "USD", "t"
    ),
    OfferRow(
        "vast", "IS-Iceland", "z-a", "i-2", "L4", 1.0, 0, None, None, 1 * NANO, MISSING, "USD", "t"
    ),
]
HEALTH_IN_EEA = PlacementRequest(
    accelerators=(AcceleratorRequest("L4", 1.0),),
    data_class="health",
    countries=("EEA",),
    hours=Decimal(2),
)


@pytest.fixture
def explained(snapshot: CatalogSnapshot, policy: Policy) -> Planner:
    return Planner(TinyCatalog(EXPLAINED, snapshot).snapshot, policy)


def test_explain_ranks_a_feasible_offer_and_prices_it_against_the_winner(
    explained: Planner,
) -> None:
    (winner,) = explained.explain(HEALTH_IN_EEA, "scaleway/fr-par/i-1")
    assert winner.rejections == () and winner.rank == 1
    assert winner.total_cost == Decimal(4)  # 2 EUR x 2 h
    assert winner.comparison_total == Decimal(6) == winner.best_total  # x 1.5
    (second,) = explained.explain(HEALTH_IN_EEA, "ovhcloud/GRA/i-3")
    assert second.rejections == () and second.rank == 2
    assert second.total_cost == second.comparison_total == Decimal(14)
    assert second.best_total == Decimal(6)


def test_explain_lists_every_reason_in_filter_order_for_each_zone(explained: Planner) -> None:
    verdicts = explained.explain(HEALTH_IN_EEA, "aws/us-east-1/i-1")
    assert [v.offer.zone for v in verdicts] == ["z-a", "z-b"]
    for v in verdicts:
        assert [(r.reason, r.plugin) for r in v.rejections] == [
            (Reason.COUNTRY, "site_in"),
            (Reason.CLOUD_ACT, "cloud_act_exposure"),
            (Reason.USER_COUNTRY, "countries"),
        ]
        assert v.rejections[2].message == "aws/us-east-1 is in US; the request wants EEA"
        assert v.rank is None and v.total_cost is None and v.comparison_total is None
        assert v.best_total == Decimal(6)


def test_explain_of_an_offer_only_policy_refuses(explained: Planner) -> None:
    (verdict,) = explained.explain(HEALTH_IN_EEA, "vast/IS-Iceland/i-2")
    assert [r.reason for r in verdict.rejections] == [Reason.CLOUD_ACT]
    assert verdict.rank is None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("aws/us-east-1", "--explain takes PROVIDER/REGION/INSTANCE, got 'aws/us-east-1'"),
        (
            "aws/us-east-1/i-9",
            "no offer 'aws/us-east-1/i-9' in the catalog; list offers with "
            "`archipel catalog --providers aws`",
        ),
        ("aws/eu-west-3/i-1", "no offer 'aws/eu-west-3/i-1' in the catalog"),
    ],
    ids=["not three parts", "unknown instance", "unknown region"],
)
def test_explain_of_an_unknown_offer_says_how_to_find_one(
    explained: Planner, key: str, message: str
) -> None:
    with pytest.raises(InputError) as err:
        explained.explain(HEALTH_IN_EEA, key)
    assert str(err.value).startswith(message)


def test_explain_when_nothing_is_feasible_has_no_winner(explained: Planner) -> None:
    nothing = replace(HEALTH_IN_EEA, countries=("US",))
    (verdict,) = explained.explain(nothing, "scaleway/fr-par/i-1")
    assert verdict.best_total is None and verdict.rank is None
    assert [r.reason for r in verdict.rejections] == [Reason.USER_COUNTRY]


def _row(provider: str, region: str, zone: str, instance: str, model: str, price: int) -> OfferRow:
    return OfferRow(
        provider,
        region,
        zone,
        instance,
        model,
        1.0,
        0,
        None,
        None,
        price * NANO,
        MISSING,
        "USD",
        "t",
    )


def test_offers_of_other_models_are_explained_by_one_of_them(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    rows = [
        _row("aws", "us-east-1", "z-a", "i-1", "A100", 1),
        _row("aws", "us-east-1", "z-a", "i-2", "H100", 1),
        _row("aws", "us-east-1", "z-a", "i-3", "L4", 1),
    ]
    planner = Planner(TinyCatalog(rows, snapshot).snapshot, policy)
    plan = planner.plan(PlacementRequest(accelerators=(AcceleratorRequest("A100", 1.0),)))
    (outside,) = [r for r in plan.rejections if r.plugin == "hardware"]
    assert outside.count == 2
    assert outside.example == "aws/us-east-1/i-2 has 1x H100; the request needs A100:1"


def test_a_reason_s_example_comes_from_its_biggest_class_first_on_ties(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """Two sites with one US offer each: the example is the first site's (sorted order)."""
    rows = [
        _row("gcp", "europe-west6", "z-a", "i-1", "L4", 1),
        _row("aws", "us-east-1", "z-a", "i-1", "L4", 1),
        _row("scaleway", "fr-par", "z-a", "i-1", "L4", 1),
        _row("scaleway", "fr-par", "z-b", "i-2", "L4", 1),
    ]
    planner = Planner(TinyCatalog(rows, snapshot).snapshot, policy)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), countries=("US",))
    (countries,) = [r for r in planner.plan(request).rejections if r.plugin == "countries"]
    assert countries.count == 3
    # scaleway/fr-par holds two of the three: it is the example
    assert countries.example == "scaleway/fr-par is in FR; the request wants US"
    request = replace(request, countries=("FR",))
    (countries,) = [r for r in planner.plan(request).rejections if r.plugin == "countries"]
    assert countries.count == 2
    # aws/us-east-1 and gcp/europe-west6 hold one each: the first in sorted order
    assert countries.example == "aws/us-east-1 is in US; the request wants FR"


def test_explain_reads_a_dash_as_an_empty_region(snapshot: CatalogSnapshot, policy: Policy) -> None:
    rows = [_row("seeweb", "", "", "i-1", "L4", 1), _row("seeweb", "it-mi2", "", "i-1", "L4", 2)]
    planner = Planner(TinyCatalog(rows, snapshot).snapshot, policy)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="public")
    (verdict,) = planner.explain(request, "seeweb/-/i-1")
    assert (verdict.offer.region, verdict.rank) == ("", 1)


def test_explain_of_an_unknown_instance_matches_nothing_else(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    # "A1" sorts right after the empty zone: an off-by-one in the lookup would match it
    planner = Planner(
        TinyCatalog([_row("aws", "us-east-1", "", "A1", "L4", 1)], snapshot).snapshot, policy
    )
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="public")
    with pytest.raises(InputError, match="no offer 'aws/us-east-1/nope'"):
        planner.explain(request, "aws/us-east-1/nope")


def test_two_filters_with_one_name_are_refused(snapshot: CatalogSnapshot, policy: Policy) -> None:
    from archipel.placement import DEFAULT_FILTERS

    with pytest.raises(ValueError, match="duplicate") as err:
        Planner(snapshot, policy, [DEFAULT_FILTERS[0], DEFAULT_FILTERS[0]])
    assert str(err.value) == "duplicate filter names: ['hardware', 'hardware']"


def test_a_plan_in_full_ranks_scores_counts_and_rejections(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    rows = [
        OfferRow(
            "scaleway",
            "fr-par",
            "z-a",
            "i-1",
            "L4",
            1.0,
            0,
            None,
            None,
            1 * NANO,
            MISSING,
            "EUR",
            "t",
        ),
        _row("aws", "us-east-1", "z-a", "i-1", "L4", 2),
        _row("gcp", "europe-west6", "z-a", "i-1", "L4", 4),
        _row("vast", "IS-Iceland", "z-a", "i-1", "L4", 1),  # marketplace: internal refuses it
        _row("vast", "IS-Iceland", "z-b", "i-1", "L4", 1),
        _row("aws", "us-east-1", "z-a", "i-9", "H100", 1),  # another model
    ]
    tiny = TinyCatalog(rows, snapshot)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="internal")
    plan = Planner(tiny.snapshot, policy).plan(request, top=10)
    assert plan.request == request.resolved(tiny.snapshot)
    assert plan.comparison_currency == "USD"
    got = [
        (p.rank, p.offer.provider, p.comparison_total, p.scores["price"]) for p in plan.placements
    ]
    assert got == [
        (1, "scaleway", Decimal("1.5"), 100.0),  # 1 EUR x 1.5
        (2, "aws", Decimal(2), 75.0),  # 1.5 / 2
        (3, "gcp", Decimal(4), 37.5),  # 1.5 / 4
    ]
    trace = plan.trace
    assert (trace.offers_seen, trace.candidates, trace.feasible_offers) == (6, 5, 3)
    assert trace.rejected_by_plugin == {"policy": 2, "hardware": 1}
    assert trace.classes_evaluated == 4
    assert trace.elapsed_ms >= 0
    assert [(r.reason, r.plugin, r.count) for r in plan.rejections] == [
        (Reason.MARKETPLACE, "policy", 2),  # most offers first
        (Reason.HARDWARE, "hardware", 1),
    ]
    assert plan.rejections[1].example == "aws/us-east-1/i-9 has 1x H100; the request needs L4:1"


def test_a_free_offer_scores_100_and_only_the_top_ten_are_scored(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    rows = [_row("aws", "us-east-1", "z-a", f"i-{n:02}", "L4", n) for n in range(12)]
    planner = Planner(TinyCatalog(rows, snapshot).snapshot, policy)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="public")
    plan = planner.plan(request, top=12)
    assert [p.offer.instance_type for p in plan.placements] == [f"i-{n:02}" for n in range(12)]
    assert plan.placements[0].comparison_total == 0
    assert [p.scores.get("price") for p in plan.placements] == [100.0] + [0.0] * 9 + [None] * 2


def test_a_rejected_offer_without_a_region_is_named_with_a_dash(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    rows = [_row("seeweb", "", "", "i-1", "L4", 1), _row("seeweb", "", "", "i-2", "H100", 1)]
    planner = Planner(TinyCatalog(rows, snapshot).snapshot, policy)
    request = PlacementRequest(accelerators=(AcceleratorRequest("L4", 2.0),), data_class="public")
    examples = {r.plugin: r.example for r in planner.plan(request).rejections}
    assert examples["hardware"] == "seeweb/-/i-1 has 1x L4; the request needs L4:2"
