"""The framework's runners: the filter phase, the score phase, the rank order, the prefilter.

Plugins here are made up (they reject or score the rows a case names), so
each expected value is written by hand from the case, not from the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
import pytest
from tests.facts import REGION_COUNTRY

from archipel.catalog import build_table
from archipel.catalog._sources import OfferRow
from archipel.core import (
    MISSING,
    NANO,
    AcceleratorRequest,
    CatalogSnapshot,
    Reason,
    Rejection,
)
from archipel.core._offers import IntArray
from archipel.placement import (
    DEFAULT_FILTERS,
    FilterContext,
    FilterPlugin,
    FilterResult,
    HardwareFilter,
    MarketFilter,
    PlacementRequest,
    Planner,
    PolicyFilter,
    run_filters,
    run_scores,
)
from archipel.placement._phases import (
    FloatArray,
    check_weights,
    find_prefilter,
    first_outside,
    rank_order,
)
from archipel.policy import Policy

SITES = {
    ("aws", "us-east-1"): REGION_COUNTRY[("aws", "us-east-1")],
    ("gcp", "europe-west6"): REGION_COUNTRY[("gcp", "europe-west6")],
    ("scaleway", "fr-par"): REGION_COUNTRY[("scaleway", "fr-par")],
}


def offer(provider: str, region: str, zone: str, instance: str, model: str, nano: int) -> OfferRow:
    return OfferRow(
        provider, region, zone, instance, model, 1.0, 0, None, None, nano, MISSING, "USD", "t"
    )


#: six L4 offers, in the table's order (by provider, region, zone, instance type)
ROWS = [
    offer("aws", "us-east-1", "z-a", "i-1", "L4", 3 * NANO),
    offer("aws", "us-east-1", "z-a", "i-2", "L4", 2 * NANO),
    offer("aws", "us-east-1", "z-b", "i-1", "L4", 3 * NANO),
    offer("gcp", "europe-west6", "z-a", "i-1", "L4", 2 * NANO),
    offer("scaleway", "fr-par", "z-a", "i-1", "L4", 1 * NANO),
    offer("scaleway", "fr-par", "z-a", "i-2", "L4", 4 * NANO),
]


def tiny(shipped: CatalogSnapshot, rows: list[OfferRow]) -> CatalogSnapshot:
    return CatalogSnapshot(
        offers=build_table(rows, SITES, {"USD": Decimal(1)}),
        providers=shipped.providers,
        jurisdictions=shipped.jurisdictions,
        comparison_currency="USD",
        fx_rates={"USD": Decimal(1)},
    )


REQUEST = PlacementRequest(accelerators=(AcceleratorRequest("L4", 1.0),), data_class="public")


@pytest.fixture
def ctx(snapshot: CatalogSnapshot, policy: Policy) -> FilterContext:
    table = tiny(snapshot, ROWS)
    return FilterContext(
        snapshot=table,
        request=REQUEST,
        data_class=policy.data_class("public"),
        policy_verdicts=[() for _ in table.offers.classes],
        hourly_cmp=table.offers.col("cmp_price").copy(),
    )


@dataclass
class Rejects:
    """A row filter that turns down the rows it names, and counts its calls."""

    name: str
    rows: frozenset[int]
    calls: int = 0

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        self.calls += 1
        keep = np.asarray([int(r) not in self.rows for r in rows], dtype=np.bool_)
        return FilterResult(
            keep=keep, rejection=lambda r: Rejection(Reason.HARDWARE, self.name, f"row {r}")
        )


class Heard:
    """An observer that writes down what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, list[int]]] = []

    def rejected(
        self, ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rows: IntArray
    ) -> None:
        self.told.append((plugin.name, [int(r) for r in rows]))


FILTER_CASES = [
    # name, rejected by a, by b, every, kept, what the observer hears
    ("a chain reports a row under its first filter only", {1, 2}, {2, 3}, False, [0, 4, 5],
     [("a", [1, 2]), ("b", [3])]),
    ("every plugin on every row reports all of them", {1, 2}, {2, 3}, True, [0, 4, 5],
     [("a", [1, 2]), ("b", [2, 3])]),
    ("a plugin that keeps everything is not heard", set(), {5}, False, [0, 1, 2, 3, 4],
     [("b", [5])]),
    ("nothing rejected, nothing heard", set(), set(), False, [0, 1, 2, 3, 4, 5], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "by_a", "by_b", "every", "kept", "heard"),
    FILTER_CASES,
    ids=[c[0] for c in FILTER_CASES],
)
def test_the_filter_runner(
    ctx: FilterContext,
    name: str,
    by_a: set[int],
    by_b: set[int],
    every: bool,
    kept: list[int],
    heard: list[tuple[str, list[int]]],
) -> None:
    a, b, observer = Rejects("a", frozenset(by_a)), Rejects("b", frozenset(by_b)), Heard()
    rows = np.arange(6, dtype=np.int64)
    got = run_filters(ctx, rows, [a, b], observer, every=every)
    assert got.tolist() == kept
    assert observer.told == heard


def test_a_chain_stops_once_nothing_is_left(ctx: FilterContext) -> None:
    a, b = Rejects("a", frozenset(range(6))), Rejects("b", frozenset())
    assert run_filters(ctx, np.arange(6, dtype=np.int64), [a, b]).tolist() == []
    assert (a.calls, b.calls) == (1, 0)


@dataclass
class Fixed:
    """A score plugin answering the scores it was given."""

    name: str
    weight: int
    scores: Sequence[float]

    def score(self, ctx: FilterContext, rows: IntArray) -> FloatArray:
        return np.asarray(self.scores, dtype=np.float64)


SCORE_CASES = [
    # name, plugins as (weight, scores), totals: the weighted means worked out by hand
    ("one plugin: its scores", [(1, [100, 50, 0])], [100, 50, 0]),
    ("a weight alone changes nothing", [(7, [100, 50, 0])], [100, 50, 0]),
    ("equal weights: the mean", [(1, [100, 0, 40]), (1, [0, 100, 60])], [50, 50, 50]),
    ("weights 1 and 3", [(1, [100, 0, 20]), (3, [0, 100, 60])], [25, 75, 50]),
    ("three plugins", [(1, [90, 0, 0]), (1, [0, 60, 0]), (2, [0, 0, 45])], [22.5, 15, 22.5]),
]


@pytest.mark.parametrize(
    ("name", "plugins", "totals"), SCORE_CASES, ids=[c[0] for c in SCORE_CASES]
)
def test_the_score_runner_takes_the_weighted_mean(
    ctx: FilterContext, name: str, plugins: list[tuple[int, list[float]]], totals: list[float]
) -> None:
    scorers = [Fixed(f"p{i}", w, s) for i, (w, s) in enumerate(plugins)]
    scored = run_scores(ctx, np.arange(3, dtype=np.int64), scorers)
    assert scored.total.tolist() == pytest.approx(totals, abs=1e-12)
    second = scored.breakdown(1)
    assert second.total == pytest.approx(totals[1], abs=1e-12)
    assert [(p.plugin, p.score, p.weight) for p in second.plugins] == [
        (f"p{i}", s[1], w) for i, (w, s) in enumerate(plugins)
    ]


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([100.5, 0, 0], "a score outside 0..100"),
        ([-1, 0, 0], "a score outside 0..100"),
        ([float("nan"), 0, 0], "a score outside 0..100"),
        ([0, 0], r"\(2,\) scores for 3 rows"),
    ],
    ids=["above 100", "below 0", "not a number", "one score short"],
)
def test_a_score_out_of_range_is_a_fault_not_clamped(
    ctx: FilterContext, scores: list[float], message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        run_scores(ctx, np.arange(3, dtype=np.int64), [Fixed("bad", 1, scores)])


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        ([], "no score plugin"),
        ([Fixed("a", 1, []), Fixed("a", 2, [])], r"duplicate score plugin names: \['a', 'a'\]"),
        ([Fixed("a", 0, [])], "score plugin a: weight must be an integer >= 1, not 0"),
        ([Fixed("a", True, [])], "weight must be an integer >= 1, not True"),
        ([Fixed("a", 1.5, [])], "weight must be an integer >= 1, not 1.5"),  # type: ignore[arg-type]
    ],
    ids=["none", "two of one name", "weight 0", "weight True", "weight 1.5"],
)
def test_a_score_phase_that_cannot_rank_is_refused_at_construction(
    plugins: list[Fixed], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_weights(plugins)


RANK_CASES = [
    # name, total score per row of ROWS, price per row (None: ROWS'), expected order of rows
    ("price alone: cheapest first, then provider", None, None, [4, 1, 3, 0, 2, 5]),
    ("the highest total first", [10, 20, 30, 40, 50, 60], None, [5, 4, 3, 2, 1, 0]),
    ("equal totals fall back on price", [50, 90, 50, 90, 0, 0], None, [1, 3, 0, 2, 4, 5]),
    ("equal totals and prices: provider, then instance type, then zone",
     [70, 70, 70, 70, 70, 70], [1, 1, 1, 1, 1, 1], [0, 2, 1, 3, 4, 5]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "totals", "prices", "order"), RANK_CASES, ids=[c[0] for c in RANK_CASES]
)
def test_the_rank_order(
    ctx: FilterContext,
    name: str,
    totals: list[float] | None,
    prices: list[int] | None,
    order: list[int],
) -> None:
    if prices is not None:
        ctx = replace(ctx, hourly_cmp=np.asarray(prices, dtype=np.int64) * NANO)
    rows = np.arange(6, dtype=np.int64)
    total = None if totals is None else np.asarray(totals, dtype=np.float64)
    assert rows[rank_order(ctx, rows, total)].tolist() == order


@pytest.mark.parametrize(
    ("candidates", "first"),
    [([], 0), ([0, 1, 2], 3), ([1, 2], 0), ([0, 1, 4, 5], 2)],
    ids=["none", "a prefix", "missing the first", "a gap"],
)
def test_the_first_row_outside_the_candidates(candidates: list[int], first: int) -> None:
    assert first_outside(np.asarray(candidates, dtype=np.int64)) == first


def test_the_prefilter_is_the_plugin_that_narrows_wherever_it_sits() -> None:
    hardware = HardwareFilter()
    assert find_prefilter([MarketFilter(), PolicyFilter(), hardware]) is hardware
    assert find_prefilter([MarketFilter(), PolicyFilter()]) is None
    with pytest.raises(ValueError, match=r"two prefilter plugins: \['hardware', 'hardware'\]"):
        find_prefilter([hardware, HardwareFilter()])


def _mixed(shipped: CatalogSnapshot) -> CatalogSnapshot:
    """Three L4 offers and two of another model (one with no on-demand price)."""
    return tiny(
        shipped,
        [
            offer("aws", "us-east-1", "z-a", "i-1", "L4", 2 * NANO),
            offer("aws", "us-east-1", "z-a", "i-9", "H100", 9 * NANO),
            offer("gcp", "europe-west6", "z-a", "i-1", "L4", 1 * NANO),
            offer("gcp", "europe-west6", "z-a", "i-8", "A100", MISSING),
            offer("scaleway", "fr-par", "z-a", "i-1", "L4", MISSING),
        ],
    )


def test_a_chain_counts_the_same_whatever_the_prefilter_s_place(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = _mixed(snapshot)
    default = Planner(table, policy).plan(REQUEST)
    market, hardware, *rest = DEFAULT_FILTERS[1], DEFAULT_FILTERS[0], *DEFAULT_FILTERS[2:]
    moved = Planner(table, policy, [market, hardware, *rest]).plan(REQUEST)
    # hardware last among what it rejects: 2 offers of other models, never looked at one by one
    assert default.trace.rejected_by_plugin == {"market": 1, "hardware": 2}
    assert moved.trace.rejected_by_plugin == default.trace.rejected_by_plugin
    assert moved.trace.candidates == default.trace.candidates == 3
    assert [p.offer.key for p in moved.placements] == [p.offer.key for p in default.placements]


def test_a_chain_without_a_prefilter_looks_at_every_row(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    plan = Planner(_mixed(snapshot), policy, [MarketFilter()]).plan(REQUEST, itemise=True)
    assert plan.trace.candidates == plan.trace.offers_seen == 5
    assert plan.trace.rejected_by_plugin == {"market": 2}
    # without the hardware filter, the H100 offer is feasible too
    assert [p.offer.instance_type for p in plan.placements] == ["i-1", "i-1", "i-9"]
    assert [r.offer.instance_type for r in plan.itemised] == ["i-8", "i-1"]


@dataclass(frozen=True)
class TwoReasons:
    """A class filter that turns gcp down for two reasons, the way policy does."""

    name: str = "two"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        both = (
            Rejection(Reason.COUNTRY, "rule-1", "first"),
            Rejection(Reason.CLOUD_ACT, "rule-2", "second"),
        )
        per_class = [both if c.provider == "gcp" else () for c in ctx.classes]
        keep = np.asarray(
            [not per_class[int(c)] for c in ctx.snapshot.offers.col("class_idx")[rows]]
        )
        return FilterResult(keep=keep, class_rejections=per_class)


def test_explain_hears_every_reason_a_plugin_gives_and_plan_counts_the_first(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    planner = Planner(_mixed(snapshot), policy, [*DEFAULT_FILTERS, TwoReasons()])
    (verdict,) = planner.explain(REQUEST, "gcp/europe-west6/i-1")
    assert [(r.reason, r.plugin, r.message) for r in verdict.rejections] == [
        (Reason.COUNTRY, "rule-1", "first"),
        (Reason.CLOUD_ACT, "rule-2", "second"),
    ]
    counts = planner.plan(REQUEST).rejections
    assert [(r.reason, r.plugin, r.count) for r in counts if r.plugin == "two"] == [
        (Reason.COUNTRY, "two", 1)
    ]
