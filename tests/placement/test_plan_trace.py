"""A plan's ranking, markets, trace and itemised rejections, and the fleet's pools.

The catalog is made up (prices per node and hour, USD) so that each market
decision shows in the counts; every figure below is worked out from the rows:

=========================  ====  ======  ==========  ====  ===============================
offer                      zone  GPUs    on demand   spot  cheaper market (spot tolerated)
=========================  ====  ======  ==========  ====  ===============================
aws/us-east-1/i-1          z-a   L4:1    2           1     spot
aws/us-east-1/i-1          z-b   L4:1    2           3     on demand
aws/us-east-1/i-2          z-a   L4:1    2           2     on demand (a tie is not cheaper)
aws/us-east-1/i-2          z-b   L4:1    2           1     spot
scaleway/fr-par/i-3        z-a   L4:1    -           4     spot (the only market)
scaleway/fr-par/i-4        z-a   L4:1    3           -     on demand
gcp/europe-west6/i-5       z-a   L4:1    5           -     on demand
gcp/europe-west6/i-6       z-a   L4:8    8           -     (other count)
gcp/europe-west6/i-7       z-a   H100:8  9           -     (other model)
=========================  ====  ======  ==========  ====  ===============================
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from archipel.catalog import build_table
from archipel.catalog._sources import OfferRow
from archipel.core import (
    MISSING,
    NANO,
    AcceleratorRequest,
    CatalogSnapshot,
    Offer,
    Reason,
    Rejection,
)
from archipel.placement import Placement, PlacementRequest, Planner
from archipel.policy import Policy

SITES = {("aws", "us-east-1"): "US", ("scaleway", "fr-par"): "FR", ("gcp", "europe-west6"): "CH"}


def _row(key: str, zone: str, gpus: str, price: int | None, spot: int | None) -> OfferRow:
    provider, region, instance = key.split("/")
    model, count = gpus.split(":")
    return OfferRow(
        provider=provider,
        region=region,
        zone=zone,
        instance_type=instance,
        accelerator=model,
        accelerator_count=float(count),
        gpu_memory_mib=0,
        vcpus=None,
        memory_gib=None,
        price=MISSING if price is None else price * NANO,
        spot_price=MISSING if spot is None else spot * NANO,
        currency="USD",
        source="test",
    )


ROWS = [
    _row("aws/us-east-1/i-1", "z-a", "L4:1", 2, 1),
    _row("aws/us-east-1/i-1", "z-b", "L4:1", 2, 3),
    _row("aws/us-east-1/i-2", "z-a", "L4:1", 2, 2),
    _row("aws/us-east-1/i-2", "z-b", "L4:1", 2, 1),
    _row("scaleway/fr-par/i-3", "z-a", "L4:1", None, 4),
    _row("scaleway/fr-par/i-4", "z-a", "L4:1", 3, None),
    _row("gcp/europe-west6/i-5", "z-a", "L4:1", 5, None),
    _row("gcp/europe-west6/i-6", "z-a", "L4:8", 8, None),
    _row("gcp/europe-west6/i-7", "z-a", "H100:8", 9, None),
]


@pytest.fixture(scope="module")
def tiny(snapshot: CatalogSnapshot, policy: Policy) -> Planner:
    made_up = CatalogSnapshot(
        offers=build_table(ROWS, SITES, {"USD": Decimal(1)}),
        providers=snapshot.providers,
        jurisdictions=snapshot.jurisdictions,
        comparison_currency="USD",
        fx_rates={"USD": Decimal(1)},
    )
    return Planner(made_up, policy)


def _request(spot: bool, gpus: str = "L4:1", **extra: object) -> PlacementRequest:
    model, count = gpus.split(":")
    return PlacementRequest(
        accelerators=(AcceleratorRequest(model, float(count)),),
        data_class="public",
        spot=spot,
        hours=Decimal(2),
        **extra,  # type: ignore[arg-type]
    )


def _key(p: Placement | Offer) -> str:
    o = p.offer if isinstance(p, Placement) else p
    return f"{o.provider}/{o.region}/{o.instance_type}"


def test_spot_tolerated_each_zone_uses_its_cheaper_market(tiny: Planner) -> None:
    """Seven placements: i-1 and i-2 in both markets, i-3 spot, i-4 and i-5 on demand.
    Price scores: the best total over each total, x100, three decimals."""
    plan = tiny.plan(_request(spot=True), top=10)
    got = [(_key(p), p.offer.zone, p.spot, p.comparison_total, p.scores) for p in plan.placements]
    assert got == [
        ("aws/us-east-1/i-1", "z-a", True, Decimal(2), {"price": 100.0}),
        ("aws/us-east-1/i-2", "z-b", True, Decimal(2), {"price": 100.0}),
        ("aws/us-east-1/i-1", "z-b", False, Decimal(4), {"price": 50.0}),
        ("aws/us-east-1/i-2", "z-a", False, Decimal(4), {"price": 50.0}),
        ("scaleway/fr-par/i-4", "z-a", False, Decimal(6), {"price": 33.333}),
        ("scaleway/fr-par/i-3", "z-a", True, Decimal(8), {"price": 25.0}),
        ("gcp/europe-west6/i-5", "z-a", False, Decimal(10), {"price": 20.0}),
    ]
    assert [p.rank for p in plan.placements] == [1, 2, 3, 4, 5, 6, 7]
    assert {p.hours for p in plan.placements} == {Decimal(2)}
    trace = plan.trace
    assert (trace.offers_seen, trace.candidates, trace.feasible_offers) == (9, 8, 7)
    assert trace.feasible_placements == 7
    assert trace.rejected_by_plugin == {"hardware": 2}  # L4:8 (same model) and H100:8


def test_on_demand_only_counts_one_placement_per_instance(tiny: Planner) -> None:
    """i-1, i-2, i-4 and i-5 on demand; i-3 (spot only) is not sold."""
    plan = tiny.plan(_request(spot=False), top=10)
    assert [(_key(p), p.offer.zone, p.spot) for p in plan.placements] == [
        ("aws/us-east-1/i-1", "z-a", False),
        ("aws/us-east-1/i-2", "z-a", False),
        ("scaleway/fr-par/i-4", "z-a", False),
        ("gcp/europe-west6/i-5", "z-a", False),
    ]
    assert (plan.trace.feasible_offers, plan.trace.feasible_placements) == (6, 4)
    assert plan.trace.rejected_by_plugin == {"hardware": 2, "market": 1}


def test_a_plan_shows_five_placements_unless_asked_for_more(tiny: Planner) -> None:
    assert len(tiny.plan(_request(spot=True)).placements) == 5


def test_an_itemised_plan_says_why_each_offer_lost_in_table_order(tiny: Planner) -> None:
    """The table is sorted by accelerator model, then count: H100 first, L4:8 last."""
    plan = tiny.plan(_request(spot=False), itemise=True)
    assert [(_key(i.offer), i.rejection) for i in plan.itemised] == [
        (
            "gcp/europe-west6/i-7",
            Rejection(
                Reason.HARDWARE,
                "hardware",
                "gcp/europe-west6/i-7 has 8x H100; the request needs L4:1",
            ),
        ),
        (
            "scaleway/fr-par/i-3",
            Rejection(
                Reason.NOT_SOLD,
                "market",
                "scaleway/fr-par/i-3 has no price on demand (spot not allowed)",
            ),
        ),
        (
            "gcp/europe-west6/i-6",
            Rejection(
                Reason.HARDWARE,
                "hardware",
                "gcp/europe-west6/i-6 has 8x L4; the request needs L4:1",
            ),
        ),
    ]
    assert tiny.plan(_request(spot=False)).itemised == ()  # only when asked


def test_pools_are_the_cheapest_offer_per_site_and_hardware_ranked_from_one(
    tiny: Planner,
) -> None:
    """On demand: aws's four L4:1 rows cost 2 each (the first by instance and zone
    stands for them), scaleway's i-4 costs 3, gcp's i-5 costs 5."""
    pools = tiny.options(_request(spot=False))
    assert [(_key(p), p.offer.zone, p.rank, p.comparison_total) for p in pools] == [
        ("aws/us-east-1/i-1", "z-a", 1, Decimal(4)),
        ("scaleway/fr-par/i-4", "z-a", 2, Decimal(6)),
        ("gcp/europe-west6/i-5", "z-a", 3, Decimal(10)),
    ]


def test_a_pool_must_pass_every_filter_even_when_one_offer_is_left(tiny: Planner) -> None:
    """One L4:8 offer passes the hardware check; it is in CH, not FR."""
    assert tiny.options(_request(spot=False, gpus="L4:8", countries=("FR",))) == []
    (only,) = tiny.options(_request(spot=False, gpus="L4:8"))
    assert _key(only) == "gcp/europe-west6/i-6"


def test_an_itemised_plan_names_a_site_filter_by_site(tiny: Planner) -> None:
    """gcp excluded: its L4:1 offer by the provider filter, the other two by hardware first."""
    plan = tiny.plan(_request(spot=True, exclude_providers=("gcp",)), itemise=True)
    assert [(_key(i.offer), i.rejection.plugin, i.rejection.message) for i in plan.itemised] == [
        (
            "gcp/europe-west6/i-7",
            "hardware",
            "gcp/europe-west6/i-7 has 8x H100; the request needs L4:1",
        ),
        (
            "gcp/europe-west6/i-5",
            "providers",
            "gcp/europe-west6: provider gcp excluded by the request",
        ),
        (
            "gcp/europe-west6/i-6",
            "hardware",
            "gcp/europe-west6/i-6 has 8x L4; the request needs L4:1",
        ),
    ]
