"""The placement engine: prefilter -> filter -> score -> rank -> explain.

``Planner`` is a pure function of an immutable snapshot and a policy: the
same request gives the same plan. It caches, per data class, the policy
verdict of every equivalence class (provider, region) of the snapshot, so a
request evaluates policy at most once per class and usually not at all.

The phases, their plugin interfaces and their runners are in ``_phases``;
the filter plugins in ``_filters``, the score plugins in ``_scores``, the
decision trace in ``_trace``. Single-workload planning is vectorised: the
candidates are one slice of the offer table per requested model, prices are
integer nano-units, and the ranking is one lexicographic sort.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from archipel.core import MISSING, CatalogSnapshot, Offer, Rejection
from archipel.core._offers import IntArray
from archipel.placement._filters import DEFAULT_FILTERS, policy_verdicts
from archipel.placement._phases import (
    FilterContext,
    FilterPlugin,
    ScoreBreakdown,
    ScorePlugin,
    Scores,
    check_weights,
    find_prefilter,
    rank_order,
    run_filters,
    run_scores,
)
from archipel.placement._request import PlacementRequest
from archipel.placement._scores import DEFAULT_SCORES
from archipel.placement._trace import OfferRejection, PlanTrace, Reasons, Tally
from archipel.placement._trace import RejectionCount as RejectionCount  # a Plan's, re-exported
from archipel.policy import Policy

#: how many of the top placements get a per-plugin score breakdown in the trace
TOP_K_SCORES = 10


@dataclass(frozen=True, slots=True)
class Placement:
    """One feasible way to run the request, priced exactly in the offer's currency.

    ``breakdown`` is the score phase's verdict on it, for the top
    ``TOP_K_SCORES`` placements of a plan (``None`` below them).
    """

    rank: int
    offer: Offer
    spot: bool
    nodes: int
    hours: Decimal
    price_per_hour: Decimal  # per node, offer currency
    total_cost: Decimal  # price_per_hour * nodes * hours, offer currency
    currency: str
    comparison_total: Decimal  # total_cost in the comparison currency
    breakdown: ScoreBreakdown | None = None

    @property
    def scores(self) -> dict[str, float]:
        """Each score plugin's score, to three decimals (empty below the top ten)."""
        if self.breakdown is None:
            return {}
        return {p.plugin: round(p.score, 3) for p in self.breakdown.plugins}


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer to a request: ranked placements and why everything else lost.

    ``itemised`` holds one :class:`OfferRejection` per rejected offer, in
    offer-table order, when the plan was asked for it (small tables: sites).
    """

    request: PlacementRequest
    placements: tuple[Placement, ...]
    rejections: tuple[RejectionCount, ...]
    trace: PlanTrace
    comparison_currency: str
    itemised: tuple[OfferRejection, ...] = ()

    @property
    def feasible(self) -> bool:
        return bool(self.placements)


@dataclass(frozen=True, slots=True)
class OfferVerdict:
    """The whole story of one offer under a request (see :meth:`Planner.explain`)."""

    offer: Offer
    rejections: tuple[Rejection, ...]
    rank: int | None  # 1-based rank among feasible offers, None if rejected
    total_cost: Decimal | None
    best_total: Decimal | None  # the winner's total, comparison currency
    comparison_total: Decimal | None
    scores: ScoreBreakdown | None = None  # this offer's, when feasible
    winner_scores: ScoreBreakdown | None = None  # the winner's, when anything is feasible


@dataclass(frozen=True, slots=True)
class Ranking:
    """The feasible rows, best first, with what the rank phase knows of each.

    A *placement* is a provider, region, instance type and market: the zones
    of one offer are one placement, at its best zone. ``keys`` names each
    row's placement; ``firsts`` are the positions of each placement's best
    row, in rank order.
    """

    rows: IntArray
    scores: Scores  # in the order the rows were scored, before ranking
    order: IntArray  # ``rows[i]`` was the ``order[i]``-th row scored
    spot: IntArray  # 1 where the row's placement runs on spot
    keys: IntArray
    firsts: IntArray

    def breakdown(self, i: int) -> ScoreBreakdown:
        """The score breakdown of the row at position ``i``."""
        return self.scores.breakdown(int(self.order[i]))

    def rank(self, i: int) -> int:
        """The placement rank (from 1) of the row at position ``i``."""
        best = int(np.argmax(self.keys == self.keys[i]))  # its placement's best row
        return int(np.searchsorted(self.firsts, best)) + 1


class Planner:
    """Plans requests against one snapshot and one policy.

    ``filters`` is the filter chain, in the order rejections are counted;
    the one among them that implements ``candidates`` (the hardware filter by
    default) is also the prefilter. ``scores`` are the score plugins, each
    with its weight; the default is price alone.
    """

    def __init__(
        self,
        snapshot: CatalogSnapshot,
        policy: Policy,
        filters: Sequence[FilterPlugin] = DEFAULT_FILTERS,
        scores: Sequence[ScorePlugin] = DEFAULT_SCORES,
    ) -> None:
        names = [f.name for f in filters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate filter names: {names}")
        check_weights(scores)
        self.snapshot = snapshot
        self.policy = policy
        self.filters = tuple(filters)
        self.prefilter = find_prefilter(self.filters)
        self.scores = tuple(scores)
        self._verdicts: dict[str, list[tuple[Rejection, ...]]] = {}
        c = snapshot.offers.col
        # per row, its site and instance type as one number: half a placement's key
        self._site_instance: IntArray = c("class_idx").astype(np.int64) * len(
            snapshot.offers.strings
        ) + c("instance_idx")

    def __repr__(self) -> str:
        return f"Planner({self.snapshot!r}, policy={self.policy.name!r})"

    # -- phases -------------------------------------------------------------

    def _context(self, request: PlacementRequest) -> FilterContext:
        data_class = self.policy.data_class(request.data_class)
        verdicts = self._verdicts.get(data_class.name)
        if verdicts is None:
            verdicts = policy_verdicts(self.snapshot, data_class)
            self._verdicts[data_class.name] = verdicts
        return FilterContext(
            snapshot=self.snapshot,
            request=request,
            data_class=data_class,
            policy_verdicts=verdicts,
            hourly_cmp=self._hourly(request),
        )

    def _hourly(self, request: PlacementRequest) -> IntArray:
        """Per offer: price per hour of the placement (all nodes), comparison currency."""
        offers = self.snapshot.offers
        on_demand = offers.col("cmp_price")
        if request.spot:
            spot = offers.col("cmp_spot_price")
            both = np.where(
                on_demand == MISSING,
                spot,
                np.where(spot == MISSING, on_demand, np.minimum(on_demand, spot)),
            )
        else:
            both = on_demand
        return np.where(both == MISSING, MISSING, both * request.nodes)

    def _candidates(self, ctx: FilterContext) -> IntArray:
        """The prefilter phase: the rows the filters look at."""
        if self.prefilter is None:
            return np.arange(len(self.snapshot.offers), dtype=np.int64)
        return self.prefilter.candidates(ctx)

    def _feasible(self, ctx: FilterContext) -> IntArray:
        return run_filters(ctx, self._candidates(ctx), self.filters)

    def _ranking(self, ctx: FilterContext, rows: IntArray) -> Ranking:
        """The score and rank phases over the feasible rows."""
        scored = run_scores(ctx, rows, self.scores)
        order = rank_order(ctx, rows, scored.total)
        ranked = rows[order]
        spot = self._spot(ctx, ranked)
        keys = self._placement_keys(ranked, spot)
        firsts = np.sort(np.unique(keys, return_index=True)[1])
        return Ranking(ranked, scored, order, spot, keys, firsts)

    def _placement_keys(self, rows: IntArray, spot: IntArray) -> IntArray:
        """What makes rows one placement: class, instance type, market (not the zone)."""
        keys: IntArray = self._site_instance[rows] * 2 + spot
        return keys

    def _spot(self, ctx: FilterContext, rows: IntArray) -> IntArray:
        """Per row, 1 where the placement runs on spot: tolerated and cheaper than on demand."""
        if not ctx.request.spot:
            return np.zeros(len(rows), dtype=np.int64)
        c = self.snapshot.offers.col
        on_demand, spot = c("cmp_price")[rows], c("cmp_spot_price")[rows]
        cheaper = (spot != MISSING) & ((on_demand == MISSING) | (spot < on_demand))
        return np.asarray(cheaper, dtype=np.int64)

    # -- public API ---------------------------------------------------------

    def plan(
        self,
        request: PlacementRequest,
        top: int = 5,
        *,
        extra: Sequence[FilterPlugin] = (),
        itemise: bool = False,
    ) -> Plan:
        """Rank feasible placements (at most ``top``, one per provider/region/instance/market).

        ``extra`` filters run after the planner's own, for this plan only (the
        state of sites now); ``itemise`` also says why each rejected offer lost.
        """
        started = time.perf_counter()
        request = request.resolved(self.snapshot)
        ctx = self._context(request)
        candidates = self._candidates(ctx)
        tally = Tally(itemise)
        rows = run_filters(ctx, candidates, (*self.filters, *extra), tally)
        if self.prefilter is not None:  # counted last, so a candidate's example wins
            tally.outside(ctx, self.prefilter, candidates)
        ranking = self._ranking(ctx, rows)
        placements = self._top(ctx, ranking, top)
        offers = self.snapshot.offers
        trace = PlanTrace(
            offers_seen=len(offers),
            candidates=len(candidates),
            feasible_offers=len(rows),
            rejected_by_plugin=tally.counts,
            classes_evaluated=len(offers.classes),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            feasible_placements=len(ranking.firsts),
        )
        itemised = tally.itemised
        return Plan(
            request,
            placements,
            tally.merged(),
            trace,
            self.snapshot.comparison_currency,
            tuple(OfferRejection(offers.offer(r), itemised[r]) for r in sorted(itemised)),
        )

    def _top(self, ctx: FilterContext, ranking: Ranking, top: int) -> tuple[Placement, ...]:
        """The best ``top`` placements, the first ``TOP_K_SCORES`` with their breakdown."""
        out = []
        for i, pos in enumerate(ranking.firsts[:top].tolist()):
            breakdown = ranking.breakdown(pos) if i < TOP_K_SCORES else None
            row, spot = int(ranking.rows[pos]), bool(ranking.spot[pos])
            out.append(self._placement(ctx, row, spot, i + 1, breakdown))
        return tuple(out)

    def _placement(
        self,
        ctx: FilterContext,
        row: int,
        use_spot: bool,
        rank: int,
        breakdown: ScoreBreakdown | None = None,
    ) -> Placement:
        request = ctx.request
        offer = self.snapshot.offers.offer(row)
        price = offer.spot_price_per_hour if use_spot else offer.price_per_hour
        assert price is not None, "ranked an offer with no price in the chosen market"
        total = price * request.nodes * request.hours
        rate = self.snapshot.fx_rates.get(offer.currency, Decimal(1))
        return Placement(
            rank=rank,
            offer=offer,
            spot=use_spot,
            nodes=request.nodes,
            hours=request.hours,
            price_per_hour=price,
            total_cost=total,
            currency=offer.currency,
            comparison_total=total * rate,
            breakdown=breakdown,
        )

    def explain(self, request: PlacementRequest, key: str) -> list[OfferVerdict]:
        """Why each offer named ``provider/region/instance_type`` won or lost.

        Every filter runs on it (not only the first that said no). A feasible
        offer gets its rank, its score breakdown and the winner's, and how
        much more it costs than the winner.
        """
        request = request.resolved(self.snapshot)
        ctx = self._context(request)
        rows = _rows_for_key(self.snapshot, key)
        reasons = Reasons()
        run_filters(ctx, rows, self.filters, reasons, every=True)
        ranking = self._ranking(ctx, self._feasible(ctx))
        position = {row: i for i, row in enumerate(ranking.rows.tolist())}
        winner = None
        if len(ranking.rows):
            row, spot = int(ranking.rows[0]), bool(ranking.spot[0])
            winner = self._placement(ctx, row, spot, 1, ranking.breakdown(0))
        return [
            self._verdict(ctx, row, tuple(reasons.of.get(row, ())), ranking, position, winner)
            for row in rows.tolist()
        ]

    def _verdict(
        self,
        ctx: FilterContext,
        row: int,
        failures: tuple[Rejection, ...],
        ranking: Ranking,
        position: dict[int, int],
        winner: Placement | None,
    ) -> OfferVerdict:
        placement = None
        if not failures:
            i = position[row]
            spot, breakdown = bool(ranking.spot[i]), ranking.breakdown(i)
            placement = self._placement(ctx, row, spot, ranking.rank(i), breakdown)
        return OfferVerdict(
            offer=self.snapshot.offers.offer(row),
            rejections=failures,
            rank=None if placement is None else placement.rank,
            total_cost=None if placement is None else placement.total_cost,
            best_total=None if winner is None else winner.comparison_total,
            comparison_total=None if placement is None else placement.comparison_total,
            scores=None if placement is None else placement.breakdown,
            winner_scores=None if winner is None else winner.breakdown,
        )

    def options(self, request: PlacementRequest) -> list[Placement]:
        """Every feasible *pool* for a request, cheapest first.

        A pool is one provider region with one accelerator model and count:
        offers in the same pool compete for the same capacity, so only the
        cheapest of them is worth keeping (the fleet planner's candidates,
        which it costs itself: price order, whatever the score plugins).
        """
        request = request.resolved(self.snapshot)
        ctx = self._context(request)
        rows = self._feasible(ctx)
        ordered = rows[rank_order(ctx, rows)]
        spots = self._spot(ctx, ordered).tolist()
        c = self.snapshot.offers.col
        seen: set[tuple[int, int, float]] = set()
        out: list[Placement] = []
        for row, spot in zip(ordered.tolist(), spots, strict=True):
            key = (int(c("class_idx")[row]), int(c("accel_idx")[row]), float(c("accel_count")[row]))
            if key not in seen:
                seen.add(key)
                out.append(self._placement(ctx, row, bool(spot), len(out) + 1))
        return out


def _rows_for_key(snapshot: CatalogSnapshot, key: str) -> IntArray:
    from archipel.core import InputError

    parts = key.split("/")
    if len(parts) != 3:
        raise InputError(f"--explain takes PROVIDER/REGION/INSTANCE, got {key!r}")
    provider, region, instance = parts
    region = "" if region == "-" else region
    offers = snapshot.offers
    class_ids = [
        i for i, c in enumerate(offers.classes) if c.provider == provider and c.region == region
    ]
    try:
        inst = list(offers.strings).index(instance)
    except ValueError:
        inst = -1
    mask = np.isin(offers.col("class_idx"), class_ids) & (offers.col("instance_idx") == inst)
    rows = np.nonzero(mask)[0]
    if len(rows) == 0:
        raise InputError(
            f"no offer {key!r} in the catalog; list offers with "
            f"`archipel catalog --providers {provider}`"
        )
    return rows.astype(np.int64)
