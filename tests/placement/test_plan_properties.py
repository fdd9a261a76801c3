"""Invariants of ``plan`` over random requests, against a brute-force reference.

- every returned placement satisfies every hard rule (hardware, policy, the
  user's constraints, the price cap);
- the first placement is the cheapest feasible offer, and the list is sorted;
- the plan is feasible exactly when the reference finds something;
- the same request gives the same plan.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.catalog import load_snapshot
from archipel.core import AcceleratorRequest, CatalogSnapshot, Offer
from archipel.placement import PlacementRequest, Planner

from .reference import best_per_market, feasible, satisfies

# Every model and per-node count the shipped catalog sells, plus counts nobody sells.
_SHIPPED = load_snapshot()
MODELS = sorted({a for a in _SHIPPED.offers.accelerators if a})
COUNTS = sorted({float(c) for c in _SHIPPED.offers.col("accel_count")} | {3.0, 16.0})
COUNTRIES = sorted({c.country for c in _SHIPPED.offers.classes if c.country} | {"LI"})
CLASSES = ["public", "internal", "confidential", "personal", "health", "sovereign"]
PROVIDERS = [
    "aws",
    "azure",
    "gcp",
    "oci",
    "lambda",
    "nebius",
    "ovhcloud",
    "scaleway",
    "hyperstack",
    "verda",
    "seeweb",
    "vast",
    "hyperbolic",
]


class OffersByModel(dict[str, list[Offer]]):
    """Every offer with an accelerator, by model; a short repr keeps failure reports short."""

    def __repr__(self) -> str:
        return f"<{sum(map(len, self.values()))} offers of {len(self)} models>"


@pytest.fixture(scope="module")
def all_offers(snapshot: CatalogSnapshot) -> OffersByModel:
    """Every offer with an accelerator, materialised one by one, grouped by model."""
    by_model = OffersByModel()
    for i in range(len(snapshot.offers)):
        offer = snapshot.offers.offer(i)
        if offer.accelerator:
            by_model.setdefault(offer.accelerator, []).append(offer)
    return by_model


requests = st.builds(
    PlacementRequest,
    accelerators=st.lists(
        st.builds(AcceleratorRequest, st.sampled_from(MODELS), st.sampled_from(COUNTS)),
        min_size=1,
        max_size=2,
    ).map(tuple),
    data_class=st.sampled_from(CLASSES),
    nodes=st.integers(1, 4),
    spot=st.booleans(),
    hours=st.sampled_from([Decimal(1), Decimal("10.5"), Decimal(24), Decimal(720)]),
    countries=st.one_of(
        st.sampled_from([(), ("EU",), ("EEA",), ("EU", "CH"), ("EEA", "US"), ("NO",), ("IS",)]),
        st.lists(st.sampled_from(["EU", "EEA", *COUNTRIES]), min_size=1, max_size=3).map(tuple),
    ),
    providers=st.one_of(
        st.just(()), st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=3).map(tuple)
    ),
    exclude_providers=st.lists(st.sampled_from(PROVIDERS), max_size=2).map(tuple),
    max_price_per_hour=st.sampled_from(
        [None, Decimal("0.15"), Decimal(1), Decimal(5), Decimal(40), Decimal(150)]
    ),
)


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(request=requests)
def test_plan_matches_the_brute_force_reference(
    planner: Planner,
    snapshot: CatalogSnapshot,
    all_offers: OffersByModel,
    request: PlacementRequest,
) -> None:
    plan = planner.plan(request, top=10)
    candidates = [o for m in {a.model for a in request.accelerators} for o in all_offers.get(m, [])]
    reference = feasible(snapshot, candidates, request)

    assert plan.feasible == bool(reference)
    for p in plan.placements:
        assert satisfies(snapshot, p.offer, request), p.offer.key
        if request.max_price_per_hour is not None:
            rate = snapshot.fx_rates[p.currency]
            assert p.price_per_hour * p.nodes * rate <= request.max_price_per_hour
    totals = [p.comparison_total for p in plan.placements]
    assert totals == sorted(totals)
    # the whole ranking, not only the winner: the cheapest offer of each
    # provider/region/instance/market, cheapest first (up to rounding to nano-units)
    expected = best_per_market(reference, 10)
    tolerance = Decimal("1e-9") * request.nodes * request.hours
    assert len(totals) == len(expected)
    assert all(abs(t - e) <= tolerance for t, e in zip(totals, expected, strict=True))


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(request=requests)
def test_same_request_same_plan(
    snapshot: CatalogSnapshot, planner: Planner, request: PlacementRequest
) -> None:
    """Determinism only (correctness is the reference test above): a fresh planner,
    with a cold verdict cache, gives the same plan as a warm one."""
    from archipel.policy import default_policy

    fresh = Planner(snapshot, default_policy())
    a, b = planner.plan(request, top=5), fresh.plan(request, top=5)
    assert a.placements == b.placements
    assert a.rejections == b.rejections


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(request=requests)
def test_every_candidate_is_accounted_for(planner: Planner, request: PlacementRequest) -> None:
    """Nothing is dropped silently: feasible + rejected = every offer in the catalog."""
    plan = planner.plan(request, top=1)
    rejected = sum(r.count for r in plan.rejections)
    assert rejected + plan.trace.feasible_offers == plan.trace.offers_seen
    for r in plan.rejections:
        assert r.count > 0 and r.example and r.plugin
