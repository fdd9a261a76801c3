"""The placement engine: candidates -> filter -> score -> rank -> explain.

``Planner`` is a pure function of an immutable snapshot and a policy: the
same request gives the same plan. It caches, per data class, the policy
verdict of every equivalence class (provider, region) of the snapshot, so a
request evaluates policy at most once per class and usually not at all.

Single-workload planning is vectorised: the offer table is sorted by
accelerator, so the candidate set is one slice per requested model; prices
(per node, converted to the comparison currency) are multiplied by nodes in
integer nano-units; ranking is a lexicographic sort on (price, provider,
region, instance type, zone), which makes ties deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from archipel.core import MISSING, CatalogSnapshot, Offer, Reason, Rejection
from archipel.core._offers import IntArray
from archipel.placement._filters import (
    DEFAULT_FILTERS,
    FilterContext,
    FilterPlugin,
    FilterResult,
    policy_verdicts,
)
from archipel.placement._request import PlacementRequest
from archipel.policy import Policy

#: how many of the top placements get a per-plugin score breakdown in the trace
TOP_K_SCORES = 10


@dataclass(frozen=True, slots=True)
class Placement:
    """One feasible way to run the request, priced exactly in the offer's currency."""

    rank: int
    offer: Offer
    spot: bool
    nodes: int
    hours: Decimal
    price_per_hour: Decimal  # per node, offer currency
    total_cost: Decimal  # price_per_hour * nodes * hours, offer currency
    currency: str
    comparison_total: Decimal  # total_cost in the comparison currency (used to rank)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RejectionCount:
    """How many candidate offers one reason turned down, with an example."""

    reason: Reason
    plugin: str
    count: int
    example: str

    @property
    def unresolvable(self) -> bool:
        return self.reason.unresolvable


@dataclass(frozen=True, slots=True)
class PlanTrace:
    """What the engine did: counts per phase and time spent."""

    offers_seen: int
    candidates: int
    feasible_offers: int  # catalog rows: one per zone of the same offer
    rejected_by_plugin: dict[str, int]
    classes_evaluated: int
    elapsed_ms: float
    feasible_placements: int = 0  # distinct provider/region/instance/market: rows of the table


@dataclass(frozen=True, slots=True)
class OfferRejection:
    """Why one offer lost: the first filter that turned it down."""

    offer: Offer
    rejection: Rejection


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


class Planner:
    """Plans requests against one snapshot and one policy."""

    def __init__(
        self,
        snapshot: CatalogSnapshot,
        policy: Policy,
        filters: Sequence[FilterPlugin] = DEFAULT_FILTERS,
    ) -> None:
        names = [f.name for f in filters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate filter names: {names}")
        self.snapshot = snapshot
        self.policy = policy
        self.filters = tuple(filters)
        self._verdicts: dict[str, list[tuple[Rejection, ...]]] = {}

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

    def _candidate_rows(self, request: PlacementRequest) -> IntArray:
        models = sorted({a.model for a in request.accelerators})
        slices = [self.snapshot.offers.accelerator_slice(m) for m in models]
        parts = [np.arange(s.start, s.stop, dtype=np.int64) for s in slices]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

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
        offers = self.snapshot.offers
        total = len(offers)
        rows = self._candidate_rows(request)
        outside = total - len(rows)
        tally = _Tally(itemise)
        rows = tally.run(ctx, rows, (*self.filters, *extra))
        counts, rejections, itemised = tally.counts, tally.rejections, tally.itemised
        if outside and itemise:
            itemised.update(self._outside_itemised(ctx))
        if outside:  # offers of other models: counted last, so a same-model example wins
            hardware = self.filters[0]
            example_row = self._outside_example(request)
            why = hardware.filter(ctx, np.asarray([example_row], dtype=np.int64))
            rejections.append(
                RejectionCount(
                    Reason.HARDWARE, hardware.name, outside, why.why(ctx, example_row).message
                )
            )
            counts[hardware.name] = counts.get(hardware.name, 0) + outside
        placements = self._rank(ctx, rows, top)
        trace = PlanTrace(
            offers_seen=total,
            candidates=total - outside,
            feasible_offers=len(rows),
            rejected_by_plugin=counts,
            classes_evaluated=len(offers.classes),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            feasible_placements=len({self._placement_key(ctx, int(r)) for r in rows}),
        )
        merged = _merge(rejections)
        return Plan(
            request,
            tuple(placements),
            merged,
            trace,
            self.snapshot.comparison_currency,
            tuple(OfferRejection(offers.offer(r), itemised[r]) for r in sorted(itemised)),
        )

    def _outside_itemised(self, ctx: FilterContext) -> dict[int, Rejection]:
        """Every offer of another accelerator model, with the hardware filter's rejection."""
        inside = np.zeros(len(self.snapshot.offers), dtype=np.bool_)
        inside[self._candidate_rows(ctx.request)] = True
        rows = np.nonzero(~inside)[0].astype(np.int64)
        result = self.filters[0].filter(ctx, rows)
        return {int(r): result.why(ctx, int(r)) for r in rows[~result.keep]}

    def _outside_example(self, request: PlacementRequest) -> int:
        """A row of another accelerator model (the first one that is not requested)."""
        offers = self.snapshot.offers
        wanted = {a.model for a in request.accelerators}
        for i, name in enumerate(offers.accelerators):
            if name not in wanted and offers.accel_start[i] < offers.accel_start[i + 1]:
                return int(offers.accel_start[i])
        raise AssertionError("every offer matches the request, nothing is outside")

    def _order(self, ctx: FilterContext, rows: IntArray) -> IntArray:
        c = self.snapshot.offers.col
        keys = (
            c("zone_idx")[rows],
            c("instance_idx")[rows],
            c("class_idx")[rows],
            ctx.hourly_cmp[rows],
        )
        return rows[np.lexsort(keys)]

    def _rank(self, ctx: FilterContext, rows: IntArray, top: int) -> list[Placement]:
        ordered = self._order(ctx, rows)
        c = self.snapshot.offers.col
        seen: set[tuple[int, int, bool]] = set()
        out: list[Placement] = []
        best = None
        for row in ordered:
            row = int(row)
            placement = self._placement(ctx, row, len(out) + 1)
            key = (int(c("class_idx")[row]), int(c("instance_idx")[row]), placement.spot)
            if key in seen:
                continue
            seen.add(key)
            if best is None:
                best = placement.comparison_total
            price_score = (
                100.0
                if not placement.comparison_total
                else float(best / placement.comparison_total * 100)
            )
            if len(out) < TOP_K_SCORES:
                placement.scores["price"] = round(price_score, 3)
            out.append(placement)
            if len(out) >= top:
                break
        return out

    def _placement_key(self, ctx: FilterContext, row: int) -> tuple[int, int, bool]:
        """What makes two rows one placement: class, instance type, market (not the zone)."""
        c = self.snapshot.offers.col
        on_demand, spot = int(c("cmp_price")[row]), int(c("cmp_spot_price")[row])
        use_spot = (
            ctx.request.spot and spot != MISSING and (on_demand == MISSING or spot < on_demand)
        )
        return (int(c("class_idx")[row]), int(c("instance_idx")[row]), bool(use_spot))

    def _placement(self, ctx: FilterContext, row: int, rank: int) -> Placement:
        request = ctx.request
        offer = self.snapshot.offers.offer(row)
        on_demand, spot = offer.price_per_hour, offer.spot_price_per_hour
        use_spot = (
            request.spot
            and spot is not None
            and (
                on_demand is None
                or int(self.snapshot.offers.col("cmp_spot_price")[row])
                < int(self.snapshot.offers.col("cmp_price")[row])
            )
        )
        price = spot if use_spot else on_demand
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
        )

    def explain(self, request: PlacementRequest, key: str) -> list[OfferVerdict]:
        """Why each offer named ``provider/region/instance_type`` won or lost.

        Every filter runs on it (not only the first that said no). A feasible
        offer gets its rank and how much more it costs than the winner.
        """
        request = request.resolved(self.snapshot)
        ctx = self._context(request)
        rows = _rows_for_key(self.snapshot, key)
        full_policy = ctx.policy_verdicts
        results: list[OfferVerdict] = []
        ranked = self._order(ctx, self._feasible_rows(ctx))
        best = self._placement(ctx, int(ranked[0]), 1).comparison_total if len(ranked) else None
        rank_of: dict[tuple[int, int, bool], int] = {}
        for r in ranked:  # ranks as in plan(): zones of one offer share a rank
            rank_of.setdefault(self._placement_key(ctx, int(r)), len(rank_of) + 1)
        position = {int(r): rank_of[self._placement_key(ctx, int(r))] for r in ranked}
        for row in rows:
            row = int(row)
            single = np.asarray([row], dtype=np.int64)
            failures: list[Rejection] = []
            for plugin in self.filters:
                if plugin.name == "policy":
                    failures += full_policy[int(self.snapshot.offers.col("class_idx")[row])]
                    continue
                result = plugin.filter(ctx, single)
                if not bool(result.keep[0]):
                    failures.append(result.why(ctx, row))
            placement = None if failures else self._placement(ctx, row, position.get(row, 0))
            results.append(
                OfferVerdict(
                    offer=self.snapshot.offers.offer(row),
                    rejections=tuple(failures),
                    rank=position.get(row) if not failures else None,
                    total_cost=None if placement is None else placement.total_cost,
                    best_total=best,
                    comparison_total=None if placement is None else placement.comparison_total,
                )
            )
        return results

    def options(self, request: PlacementRequest) -> list[Placement]:
        """Every feasible *pool* for a request, cheapest first.

        A pool is one provider region with one accelerator model and count:
        offers in the same pool compete for the same capacity, so only the
        cheapest of them is worth keeping (the fleet planner's candidates).
        """
        request = request.resolved(self.snapshot)
        ctx = self._context(request)
        ordered = self._order(ctx, self._feasible_rows(ctx))
        c = self.snapshot.offers.col
        seen: set[tuple[int, int, float]] = set()
        out: list[Placement] = []
        for row in ordered:
            row = int(row)
            key = (int(c("class_idx")[row]), int(c("accel_idx")[row]), float(c("accel_count")[row]))
            if key in seen:
                continue
            seen.add(key)
            out.append(self._placement(ctx, row, len(out) + 1))
        return out

    def _feasible_rows(self, ctx: FilterContext) -> IntArray:
        rows = self._candidate_rows(ctx.request)
        for plugin in self.filters:
            if len(rows) == 0:
                break
            rows = rows[plugin.filter(ctx, rows).keep]
        return rows


class _Tally:
    """Runs filters in order over candidate rows, counting what each one rejected."""

    def __init__(self, itemise: bool) -> None:
        self.itemise = itemise
        self.counts: dict[str, int] = {}
        self.rejections: list[RejectionCount] = []
        self.itemised: dict[int, Rejection] = {}  # row -> its first rejection (if itemised)

    def run(self, ctx: FilterContext, rows: IntArray, plugins: Sequence[FilterPlugin]) -> IntArray:
        """The rows every plugin keeps."""
        for plugin in plugins:
            if len(rows) == 0:
                break
            result = plugin.filter(ctx, rows)
            rejected = rows[~result.keep]
            if len(rejected):
                self.counts[plugin.name] = self.counts.get(plugin.name, 0) + len(rejected)
                self.rejections += _summarise(ctx, plugin, result, rejected)
                if self.itemise:
                    self.itemised.update((int(r), result.why(ctx, int(r))) for r in rejected)
            rows = rows[result.keep]
        return rows


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


def _summarise(
    ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rejected: IntArray
) -> list[RejectionCount]:
    if result.rejection is not None:
        first = result.why(ctx, int(rejected[0]))
        return [RejectionCount(first.reason, plugin.name, len(rejected), first.message)]
    assert result.class_rejections is not None
    class_idx = ctx.snapshot.offers.col("class_idx")[rejected]
    per_class = np.bincount(class_idx, minlength=len(result.class_rejections))
    by_reason: dict[Reason, tuple[int, int, str]] = {}  # reason -> (count, best class count, msg)
    for cls in np.nonzero(per_class)[0]:
        rej = result.class_rejections[int(cls)]
        assert rej is not None
        n = int(per_class[cls])
        count, top, msg = by_reason.get(rej.reason, (0, -1, ""))
        if n > top:
            top, msg = n, rej.message
        by_reason[rej.reason] = (count + n, top, msg)
    return [
        RejectionCount(reason, plugin.name, count, msg)
        for reason, (count, _, msg) in by_reason.items()
    ]


def _merge(items: Sequence[RejectionCount]) -> tuple[RejectionCount, ...]:
    merged: dict[tuple[Reason, str], RejectionCount] = {}
    for item in items:
        key = (item.reason, item.plugin)
        if key in merged:
            old = merged[key]
            merged[key] = RejectionCount(
                item.reason, item.plugin, old.count + item.count, old.example
            )
        else:
            merged[key] = item
    return tuple(sorted(merged.values(), key=lambda r: (-r.count, r.reason.value)))
