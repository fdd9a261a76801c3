"""Filter plugins: each says yes or no for every candidate offer, with a reason.

Filters are vectorised: they see the candidate rows of the offer table as an
index array and answer a boolean mask. *Row* filters give one reason for all
the rows they reject; *class* filters answer per equivalence class
(provider, region), evaluated once per class and broadcast to its offers.

Order matters only for counting (an offer is counted under the first filter
that rejects it, as a scheduler's filter chain does); ``explain`` runs every
filter on one offer and reports all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from archipel.core import MISSING, CatalogSnapshot, OfferClass, Reason, Rejection
from archipel.core._offers import BoolArray, IntArray
from archipel.placement._request import PlacementRequest
from archipel.policy import DataClass, evaluate_classes


@dataclass(frozen=True, slots=True)
class FilterContext:
    """What a filter may look at: the snapshot, the request, and derived prices."""

    snapshot: CatalogSnapshot
    request: PlacementRequest
    data_class: DataClass
    policy_verdicts: Sequence[tuple[Rejection, ...]]  # per class, every failing rule
    hourly_cmp: IntArray  # per row: price per hour of the whole placement, comparison currency

    @property
    def classes(self) -> Sequence[OfferClass]:
        return self.snapshot.offers.classes

    def where(self, row: int) -> str:
        offer_class = self.classes[int(self.snapshot.offers.col("class_idx")[row])]
        instance = self.snapshot.offers.strings[int(self.snapshot.offers.col("instance_idx")[row])]
        return f"{offer_class.provider}/{offer_class.region or '-'}/{instance}"


@dataclass(frozen=True, slots=True)
class FilterResult:
    """``keep`` for each candidate row, and how to explain the others.

    Exactly one of ``rejection`` (row filters) and ``class_rejections`` (class
    filters: per class, the rejection or ``None``) is set.
    """

    keep: BoolArray
    rejection: Callable[[int], Rejection] | None = None
    class_rejections: Sequence[Rejection | None] | None = None

    def why(self, ctx: FilterContext, row: int) -> Rejection:
        """The rejection of one row that this filter turned down."""
        if self.rejection is not None:
            return self.rejection(row)
        assert self.class_rejections is not None
        found = self.class_rejections[int(ctx.snapshot.offers.col("class_idx")[row])]
        assert found is not None, "why() called for a row the filter kept"
        return found


class FilterPlugin(Protocol):
    """A filter phase; ``name`` is stable and appears in every rejection."""

    @property
    def name(self) -> str: ...

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult: ...


class HardwareFilter:
    """The offer has the requested accelerator model and count per node."""

    name = "hardware"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        offers = ctx.snapshot.offers
        accel = offers.col("accel_idx")[rows]
        count = offers.col("accel_count")[rows]
        keep = np.zeros(rows.shape, dtype=np.bool_)
        for want in ctx.request.accelerators:
            try:
                model = list(offers.accelerators).index(want.model)
            except ValueError:
                continue
            keep |= (accel == model) & (count == want.count)
        wanted = " or ".join(str(a) for a in ctx.request.accelerators)

        def why(row: int) -> Rejection:
            name = offers.accelerators[int(offers.col("accel_idx")[row])] or "no accelerator"
            n = float(offers.col("accel_count")[row])
            has = f"{n:g}x {name}" if name != "no accelerator" else name
            return Rejection(
                Reason.HARDWARE,
                self.name,
                f"{ctx.where(row)} has {has}; the request needs {wanted}",
            )

        return FilterResult(keep=keep, rejection=why)


class MarketFilter:
    """The offer is sold in a market the request accepts (on demand; spot if tolerated)."""

    name = "market"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        keep = ctx.hourly_cmp[rows] != MISSING

        def why(row: int) -> Rejection:
            market = "on demand or spot" if ctx.request.spot else "on demand (spot not allowed)"
            return Rejection(Reason.NOT_SOLD, self.name, f"{ctx.where(row)} has no price {market}")

        return FilterResult(keep=keep, rejection=why)


def _class_result(
    ctx: FilterContext, rows: IntArray, per_class: Sequence[Rejection | None]
) -> FilterResult:
    ok = np.fromiter((r is None for r in per_class), dtype=np.bool_, count=len(per_class))
    keep = ok[ctx.snapshot.offers.col("class_idx")[rows]]
    return FilterResult(keep=keep, class_rejections=per_class)


class PolicyFilter:
    """The request's data class allows the provider and the site (policy rules)."""

    name = "policy"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        first = [v[0] if v else None for v in ctx.policy_verdicts]
        return _class_result(ctx, rows, first)


class CountryFilter:
    """The site is in one of the countries the request names.

    ``EU`` is the 27 member states, ``EEA`` adds Iceland, Liechtenstein and Norway.
    """

    name = "countries"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        wanted = ctx.request.countries
        if not wanted:
            return FilterResult(keep=np.ones(rows.shape, dtype=np.bool_), class_rejections=())
        allowed: set[str] = set()
        for code in wanted:
            group = ctx.snapshot.jurisdictions.group(code)
            allowed |= group if group is not None else {code}
        label = ",".join(wanted)
        per_class: list[Rejection | None] = []
        for c in ctx.classes:
            where = f"{c.provider}/{c.region or '-'}"
            if c.country is None:
                per_class.append(
                    Rejection(
                        Reason.USER_COUNTRY,
                        self.name,
                        f"{where}: country unknown; the request wants {label}",
                    )
                )
            elif c.country not in allowed:
                hint = ""
                if "EU" in wanted and c.country in ctx.snapshot.jurisdictions.eea_non_eu:
                    hint = " (EU is the 27 member states; write EEA to include IS, LI and NO)"
                per_class.append(
                    Rejection(
                        Reason.USER_COUNTRY,
                        self.name,
                        f"{where} is in {c.country}; the request wants {label}{hint}",
                    )
                )
            else:
                per_class.append(None)
        return _class_result(ctx, rows, per_class)


class ProviderFilter:
    """The provider is among those requested and not among those excluded."""

    name = "providers"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        only, excluded = set(ctx.request.providers), set(ctx.request.exclude_providers)
        if not only and not excluded:
            return FilterResult(keep=np.ones(rows.shape, dtype=np.bool_), class_rejections=())
        per_class: list[Rejection | None] = []
        for c in ctx.classes:
            where = f"{c.provider}/{c.region or '-'}"
            if c.provider in excluded:
                per_class.append(
                    Rejection(
                        Reason.USER_EXCLUDED,
                        self.name,
                        f"{where}: provider {c.provider} excluded by the request",
                    )
                )
            elif only and c.provider not in only:
                per_class.append(
                    Rejection(
                        Reason.USER_PROVIDER,
                        self.name,
                        f"{where}: the request allows only {', '.join(sorted(only))}",
                    )
                )
            else:
                per_class.append(None)
        return _class_result(ctx, rows, per_class)


class BudgetFilter:
    """The placement's price per hour (all nodes) is within the request's maximum."""

    name = "budget"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        cap = ctx.request.max_price_per_hour
        if cap is None:
            return FilterResult(
                keep=np.ones(rows.shape, dtype=np.bool_), rejection=lambda r: _never()
            )
        from archipel.core import nano_to_decimal, to_nano  # local: only needed with a cap

        cap_nano = to_nano(cap)  # exact: the request refuses a cap finer than nano-units
        shown = format(cap.normalize(), "f")  # the cap as written, at least one decimal
        shown += "" if "." in shown else ".0"
        price = ctx.hourly_cmp[rows]
        keep = (price != MISSING) & (price <= cap_nano)
        currency = ctx.snapshot.comparison_currency

        def why(row: int) -> Rejection:
            value = nano_to_decimal(int(ctx.hourly_cmp[row]))
            return Rejection(
                Reason.OVER_BUDGET,
                self.name,
                f"{ctx.where(row)} costs {value:,.2f} {currency}/h; the request allows at most "
                f"{shown} {currency}/h",
            )

        return FilterResult(keep=keep, rejection=why)


def _never() -> Rejection:
    raise AssertionError("this filter rejects nothing")


#: the filter chain, in order: cheap per-row checks on the hardware slice first,
#: then policy (the unresolvable reasons), then the user's own constraints.
DEFAULT_FILTERS: tuple[FilterPlugin, ...] = (
    HardwareFilter(),
    MarketFilter(),
    PolicyFilter(),
    CountryFilter(),
    ProviderFilter(),
    BudgetFilter(),
)


def policy_verdicts(
    snapshot: CatalogSnapshot, data_class: DataClass
) -> list[tuple[Rejection, ...]]:
    """Every rule failure of ``data_class`` for each equivalence class of the snapshot."""
    return evaluate_classes(
        data_class, snapshot.offers.classes, snapshot.provider, snapshot.jurisdictions
    )
