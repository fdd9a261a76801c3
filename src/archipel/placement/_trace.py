"""The decision trace: what the filter phase turned down, counted, itemised and explained.

:class:`Tally` and :class:`Reasons` are the two observers of
``_phases.run_filters``: the first counts a plan's rejections by reason and
plugin (with an example each, and optionally one rejection per offer), the
second keeps every reason of the offers ``explain`` is asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from archipel.core import Offer, Reason, Rejection
from archipel.core._offers import IntArray
from archipel.placement._phases import (
    FilterContext,
    FilterPlugin,
    FilterResult,
    PreFilterPlugin,
    first_outside,
)


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


class Tally:
    """Counts what each filter rejected, by (reason, plugin), with an example each.

    With ``itemise`` it also keeps each rejected row's first rejection.
    """

    def __init__(self, itemise: bool) -> None:
        self.itemise = itemise
        self.counts: dict[str, int] = {}  # plugin -> offers it rejected
        self.rejections: list[RejectionCount] = []
        self.itemised: dict[int, Rejection] = {}  # row -> its first rejection

    def rejected(
        self, ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rows: IntArray
    ) -> None:
        self.counts[plugin.name] = self.counts.get(plugin.name, 0) + len(rows)
        self.rejections += _summarise(ctx, plugin, result, rows)
        if self.itemise:
            self.itemised.update((int(r), result.why(ctx, int(r))) for r in rows)

    def outside(self, ctx: FilterContext, plugin: PreFilterPlugin, candidates: IntArray) -> None:
        """The rows the prefilter left out, counted under it with one example.

        Call it after the filter phase: the example of a (reason, plugin)
        pair is the first one reported, so a candidate's wins.
        """
        outside = len(ctx.snapshot.offers) - len(candidates)
        if not outside:
            return
        if self.itemise:
            rows = np.setdiff1d(np.arange(len(ctx.snapshot.offers)), candidates)
            result = plugin.filter(ctx, rows)
            rejected = rows[~result.keep]
            self.itemised.update((int(r), result.why(ctx, int(r))) for r in rejected)
        example = first_outside(candidates)
        why = plugin.filter(ctx, np.asarray([example], dtype=np.int64)).why(ctx, example)
        self.rejections.append(RejectionCount(why.reason, plugin.name, outside, why.message))
        self.counts[plugin.name] = self.counts.get(plugin.name, 0) + outside

    def merged(self) -> tuple[RejectionCount, ...]:
        """One count per (reason, plugin), the first example kept; most offers first."""
        return merge(self.rejections)


class Reasons:
    """Every rejection of each row, in filter order (what ``explain`` shows)."""

    def __init__(self) -> None:
        self.of: dict[int, list[Rejection]] = {}

    def rejected(
        self, ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rows: IntArray
    ) -> None:
        for row in rows.tolist():
            self.of.setdefault(row, []).extend(result.reasons(ctx, row))


def _summarise(
    ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rejected: IntArray
) -> list[RejectionCount]:
    """The rejected rows by reason: each with the message of its biggest class."""
    if result.rejection is not None:
        first = result.why(ctx, int(rejected[0]))
        return [RejectionCount(first.reason, plugin.name, len(rejected), first.message)]
    assert result.class_rejections is not None
    class_idx = ctx.snapshot.offers.col("class_idx")[rejected]
    per_class = np.bincount(class_idx, minlength=len(result.class_rejections))
    by_reason: dict[Reason, tuple[int, int, str]] = {}  # reason -> (count, best class count, msg)
    for cls in np.nonzero(per_class)[0]:
        rej = result.class_rejections[int(cls)][0]
        n = int(per_class[cls])
        count, top, msg = by_reason.get(rej.reason, (0, -1, ""))
        if n > top:
            top, msg = n, rej.message
        by_reason[rej.reason] = (count + n, top, msg)
    return [
        RejectionCount(reason, plugin.name, count, msg)
        for reason, (count, _, msg) in by_reason.items()
    ]


def merge(items: Sequence[RejectionCount]) -> tuple[RejectionCount, ...]:
    """One count per (reason, plugin), the first example kept; most offers first."""
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
