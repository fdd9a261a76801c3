"""The score plugins, each against scores worked out by hand, and the ranking they make."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.catalog._sources import OfferRow
from archipel.core import NANO, AcceleratorRequest, CatalogSnapshot
from archipel.placement import (
    CommitmentScore,
    FilterContext,
    PlacementRequest,
    Planner,
    PluginScore,
    PriceScore,
    ScoreBreakdown,
)
from archipel.policy import Policy

from .reference import feasible
from .test_phases import offer, tiny
from .test_tiny_catalogs import CLASSES, WANTED, TinyCatalog, expected_order, offer_rows

#: one L4 offer at each of three providers, in the table's order
SITES = [
    offer("aws", "us-east-1", "z-a", "i-1", "L4", NANO),
    offer("gcp", "europe-west6", "z-a", "i-1", "L4", NANO),
    offer("scaleway", "fr-par", "z-a", "i-1", "L4", NANO),
]
L4 = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="public")


def context(
    snapshot: CatalogSnapshot, policy: Policy, hourly: list[str], hours: str = "1"
) -> FilterContext:
    """Three offers (aws, gcp, scaleway) priced per hour as given, in USD."""
    table = tiny(snapshot, SITES)
    return FilterContext(
        snapshot=table,
        request=replace(L4, hours=Decimal(hours)),
        data_class=policy.data_class("public"),
        policy_verdicts=[() for _ in table.offers.classes],
        hourly_cmp=np.asarray([int(Decimal(h) * NANO) for h in hourly], dtype=np.int64),
    )


PRICE_CASES = [
    # name, price per hour of each row, expected scores (100 * cheapest / price)
    ("twice the cheapest scores 50", ["2", "4", "8"], [100, 50, 25]),
    ("a third more", ["3", "4", "6"], [100, 75, 50]),
    ("the cheapest need not come first", ["9", "3", "7"], [100 / 3, 100, 300 / 7]),
    ("equal prices all score 100", ["7", "7", "7"], [100, 100, 100]),
    ("cents", ["0.25", "1", "0.4"], [100, 25, 62.5]),
    ("a free row scores 100 and the others 0", ["0", "1", "2"], [100, 0, 0]),
    ("two free rows", ["0", "3", "0"], [100, 0, 100]),
]


@pytest.mark.parametrize(("name", "hourly", "scores"), PRICE_CASES, ids=[c[0] for c in PRICE_CASES])
def test_price_scores(
    snapshot: CatalogSnapshot, policy: Policy, name: str, hourly: list[str], scores: list[float]
) -> None:
    ctx = context(snapshot, policy, hourly)
    got = PriceScore().score(ctx, np.arange(3, dtype=np.int64))
    assert got.tolist() == pytest.approx(scores, rel=1e-15)


def test_price_scores_only_the_rows_it_is_given(snapshot: CatalogSnapshot, policy: Policy) -> None:
    ctx = context(snapshot, policy, ["1", "4", "8"])  # the 1 is not among the rows
    assert PriceScore().score(ctx, np.asarray([1, 2], dtype=np.int64)).tolist() == [100, 50]
    assert PriceScore().score(ctx, np.zeros(0, dtype=np.int64)).tolist() == []


COMMITMENT_CASES = [
    # name, remaining per provider, hours, price per hour (aws, gcp, scaleway), expected scores
    ("a quarter covered", {"aws": "50"}, "100", ["2", "1", "1"], [25, 0, 0]),
    ("more than covered is 100", {"aws": "50"}, "10", ["2", "1", "1"], [100, 0, 0]),
    ("exactly covered", {"aws": "20"}, "10", ["2", "1", "1"], [100, 0, 0]),
    ("two providers", {"aws": "30", "gcp": "5"}, "4", ["10", "2.5", "1"], [75, 50, 0]),
    ("fractional hours", {"gcp": "3"}, "1.5", ["1", "4", "1"], [0, 50, 0]),
    ("nothing left is no preference", {"aws": "0"}, "1", ["2", "1", "1"], [0, 0, 0]),
    ("a free row where something is left", {"aws": "1"}, "1", ["0", "0", "1"], [100, 0, 0]),
    ("one nano-unit left", {"aws": "0.000000001"}, "1", ["1", "1", "1"], [1e-7, 0, 0]),
    # a computed remainder (a share of a commitment) may have more than nine decimals: it
    # is rounded half-even to the nano-unit, 1.5 nano-units to 2, never refused
    ("beyond nine decimals", {"aws": "0.0000000015"}, "1", ["1", "1", "1"], [2e-7, 0, 0]),
    ("an unknown provider changes nothing", {"nebius": "9"}, "1", ["1", "1", "1"], [0, 0, 0]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "remaining", "hours", "hourly", "scores"),
    COMMITMENT_CASES,
    ids=[c[0] for c in COMMITMENT_CASES],
)
def test_commitment_scores(
    snapshot: CatalogSnapshot,
    policy: Policy,
    name: str,
    remaining: dict[str, str],
    hours: str,
    hourly: list[str],
    scores: list[float],
) -> None:
    ctx = context(snapshot, policy, hourly, hours)
    plugin = CommitmentScore({p: Decimal(a) for p, a in remaining.items()})
    got = plugin.score(ctx, np.arange(3, dtype=np.int64))
    assert got.tolist() == pytest.approx(scores, rel=1e-12)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: CommitmentScore({"aws": Decimal(-1)}),
            r"aws: a Decimal >= 0, not Decimal\('-1'\)",
        ),
        (lambda: CommitmentScore({"aws": 1.5}), r"aws: a Decimal >= 0, not 1.5"),  # type: ignore[dict-item]
        (lambda: CommitmentScore({"aws": Decimal("NaN")}), "aws: a Decimal >= 0"),
        (lambda: CommitmentScore({}, weight=0), "commitment: weight must be an integer >= 1"),
        (lambda: PriceScore(weight=-2), "price: weight must be an integer >= 1, not -2"),
    ],
    ids=["negative", "a float", "not a number", "weight 0", "negative weight"],
)
def test_a_score_plugin_refuses_bad_configuration_when_built(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


#: aws at 2 USD/h, gcp at 1.5 USD/h, for 10 hours: 20 and 15 USD
TWO = [
    offer("aws", "us-east-1", "z-a", "i-1", "L4", 2 * NANO),
    offer("gcp", "europe-west6", "z-a", "i-1", "L4", 3 * NANO // 2),
]
RANKING_CASES = [
    # name, remaining at aws (None: price only), weights (price, commitment),
    # expected: provider, total, price score, commitment score, best first
    ("price alone: the cheaper first", None, (1, 1),
     [("gcp", 100, 100, None), ("aws", 75, 75, None)]),
    ("aws covered: (75 + 100) / 2 beats (100 + 0) / 2", "20", (1, 1),
     [("aws", 87.5, 75, 100), ("gcp", 50, 100, 0)]),
    ("a quarter covered: 50 against 50, the cheaper first", "5", (1, 1),
     [("gcp", 50, 100, 0), ("aws", 50, 75, 25)]),
    ("price weighs 3: (225 + 100) / 4 beats 300 / 4", "20", (3, 1),
     [("aws", 81.25, 75, 100), ("gcp", 75, 100, 0)]),
    ("price weighs 4: 80 against 80, the cheaper first", "20", (4, 1),
     [("gcp", 80, 100, 0), ("aws", 80, 75, 100)]),
    ("price weighs 5: 500 / 6 beats 475 / 6", "20", (5, 1),
     [("gcp", 500 / 6, 100, 0), ("aws", 475 / 6, 75, 100)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "remaining", "weights", "expected"), RANKING_CASES, ids=[c[0] for c in RANKING_CASES]
)
def test_a_commitment_can_outrank_a_cheaper_offer(
    snapshot: CatalogSnapshot,
    policy: Policy,
    name: str,
    remaining: str | None,
    weights: tuple[int, int],
    expected: list[tuple[str, float, float, float | None]],
) -> None:
    scores: list[PriceScore | CommitmentScore] = [PriceScore(weights[0])]
    if remaining is not None:
        scores.append(CommitmentScore({"aws": Decimal(remaining)}, weights[1]))
    planner = Planner(tiny(snapshot, TWO), policy, scores=scores)
    plan = planner.plan(replace(L4, hours=Decimal(10)))
    got = [(p.offer.provider, p.breakdown) for p in plan.placements]
    want = [
        (
            provider,
            ScoreBreakdown(
                pytest.approx(total, rel=1e-15),  # type: ignore[arg-type]
                (PluginScore("price", price, weights[0]),)
                if commitment is None
                else (
                    PluginScore("price", price, weights[0]),
                    PluginScore("commitment", commitment, weights[1]),
                ),
            ),
        )
        for provider, total, price, commitment in expected
    ]
    assert got == want
    assert [p.rank for p in plan.placements] == [1, 2]


def test_explain_gives_each_offer_its_breakdown_and_the_winner_s(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    scores = (PriceScore(), CommitmentScore({"aws": Decimal(20)}))
    planner = Planner(tiny(snapshot, TWO), policy, scores=scores)
    (gcp,) = planner.explain(replace(L4, hours=Decimal(10)), "gcp/europe-west6/i-1")
    assert gcp.rank == 2
    assert (gcp.comparison_total, gcp.best_total) == (Decimal(15), Decimal(20))
    assert gcp.scores == ScoreBreakdown(
        50.0, (PluginScore("price", 100.0, 1), PluginScore("commitment", 0.0, 1))
    )
    assert gcp.winner_scores == ScoreBreakdown(
        87.5, (PluginScore("price", 75.0, 1), PluginScore("commitment", 100.0, 1))
    )


def test_a_placement_s_scores_are_its_breakdown_to_three_decimals(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    rows = [
        offer("aws", "us-east-1", "z-a", "i-1", "L4", 3 * NANO),
        offer("gcp", "europe-west6", "z-a", "i-1", "L4", 7 * NANO),
    ]
    plan = Planner(tiny(snapshot, rows), policy).plan(L4)
    assert [p.scores for p in plan.placements] == [{"price": 100.0}, {"price": 42.857}]  # 300/7
    second = plan.placements[1]
    assert second.breakdown is not None
    assert second.breakdown.plugins[0].score == pytest.approx(300 / 7, rel=1e-15)
    second.scores["price"] = 0.0  # a copy: the placement's breakdown is not touched
    assert second.scores == {"price": 42.857}


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=offer_rows(),
    wanted=WANTED,
    data_class=st.sampled_from(CLASSES),
    spot=st.booleans(),
    nodes=st.integers(1, 3),
    top=st.integers(1, 8),
    weight=st.integers(1, 1000),
    indifferent=st.sampled_from([None, "nothing left", "all covered"]),
)
def test_price_alone_orders_by_price_then_provider_region_instance_zone(
    snapshot: CatalogSnapshot,
    policy: Policy,
    rows: list[OfferRow],
    wanted: list[tuple[str, float]],
    data_class: str,
    spot: bool,
    nodes: int,
    top: int,
    weight: int,
    indifferent: str | None,
) -> None:
    """At any weight, and beside a plugin that scores every offer alike, price ranks alone."""
    tiny_catalog = TinyCatalog(rows, snapshot)
    present = {r.accelerator for r in rows}
    accels = tuple(AcceleratorRequest(m, c) for m, c in wanted if m in present)
    if not accels:
        return
    request = PlacementRequest(
        accelerators=accels, data_class=data_class, nodes=nodes, spot=spot, hours=Decimal(2)
    )
    scores: list[PriceScore | CommitmentScore] = [PriceScore(weight)]
    if indifferent is not None:
        left = Decimal(0) if indifferent == "nothing left" else Decimal(10**6)
        providers = {r.provider for r in rows}
        scores.append(CommitmentScore(dict.fromkeys(providers, left), weight=3))
    plan = Planner(tiny_catalog.snapshot, policy, scores=scores).plan(request, top=top)
    offers = [tiny_catalog.snapshot.offers.offer(i) for i in range(len(rows))]
    found = feasible(tiny_catalog.snapshot, offers, request)
    got = [
        (o.provider, o.region, o.instance_type, p.spot, o.zone, p.comparison_total)
        for p, o in ((p, p.offer) for p in plan.placements)
    ]
    assert got == expected_order(found, top), repr(tiny_catalog)
