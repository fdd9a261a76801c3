"""Filter plugins: each says yes or no for every candidate offer, with a reason.

Filters are vectorised: they see the candidate rows of the offer table as an
index array and answer a boolean mask (the interface is in ``_phases``).
*Row* filters give one reason for each row they reject; *class* filters
answer per equivalence class (provider, region), evaluated once per class and
broadcast to its offers, with every reason the class fails (policy: every
rule), the first being the one it is counted under.

Order matters only for counting (an offer is counted under the first filter
that rejects it, as a scheduler's filter chain does); ``explain`` runs every
filter on one offer and reports all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archipel.core import MISSING, CatalogSnapshot, OfferClass, Reason, Rejection
from archipel.core._offers import IntArray
from archipel.placement._phases import FilterContext, FilterPlugin, FilterResult
from archipel.policy import DataClass, evaluate_classes


class HardwareFilter:
    """The offer has the requested accelerator model and count per node.

    Also the prefilter: the table is sorted by accelerator model, so the
    candidates are the slices of the requested models, and every offer of
    another model is counted here without being looked at one by one.
    """

    name = "hardware"

    def candidates(self, ctx: FilterContext) -> IntArray:
        """The rows of the requested accelerator models, sorted."""
        offers = ctx.snapshot.offers
        models = sorted({a.model for a in ctx.request.accelerators})
        slices = [offers.accelerator_slice(m) for m in models]
        parts = [np.arange(s.start, s.stop, dtype=np.int64) for s in slices]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

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
    ctx: FilterContext, rows: IntArray, per_class: Sequence[tuple[Rejection, ...]]
) -> FilterResult:
    ok = np.fromiter((not r for r in per_class), dtype=np.bool_, count=len(per_class))
    keep = ok[ctx.snapshot.offers.col("class_idx")[rows]]
    return FilterResult(keep=keep, class_rejections=per_class)


class PolicyFilter:
    """The request's data class allows the provider and the site (policy rules).

    A class is rejected with every rule it fails, in policy order; each
    rejection names its rule as its plugin.
    """

    name = "policy"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        return _class_result(ctx, rows, ctx.policy_verdicts)


class CountryFilter:
    """The site is in one of the countries the request names.

    ``EU`` is the 27 member states, ``EEA`` adds Iceland, Liechtenstein and Norway.
    """

    name = "countries"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        wanted = ctx.request.countries
        if not wanted:
            return FilterResult(keep=np.ones(rows.shape, dtype=np.bool_), class_rejections=())
        allowed = ctx.snapshot.jurisdictions.countries(wanted)
        per_class = [() if c.country in allowed else self._rejected(ctx, c) for c in ctx.classes]
        return _class_result(ctx, rows, per_class)

    def _rejected(self, ctx: FilterContext, site: OfferClass) -> tuple[Rejection, ...]:
        wanted = ctx.request.countries
        where, label = f"{site.provider}/{site.region or '-'}", ",".join(wanted)
        if site.country is None:
            message = f"{where}: country unknown; the request wants {label}"
        else:
            hint = ""
            if "EU" in wanted and site.country in ctx.snapshot.jurisdictions.eea_non_eu:
                hint = " (EU is the 27 member states; write EEA to include IS, LI and NO)"
            message = f"{where} is in {site.country}; the request wants {label}{hint}"
        return (Rejection(Reason.USER_COUNTRY, self.name, message),)


class ProviderFilter:
    """The provider is among those requested and not among those excluded."""

    name = "providers"

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        only, excluded = set(ctx.request.providers), set(ctx.request.exclude_providers)
        if not only and not excluded:
            return FilterResult(keep=np.ones(rows.shape, dtype=np.bool_), class_rejections=())
        per_class = [
            self._rejected(c, only, excluded)
            if c.provider in excluded or (only and c.provider not in only)
            else ()
            for c in ctx.classes
        ]
        return _class_result(ctx, rows, per_class)

    def _rejected(
        self, site: OfferClass, only: set[str], excluded: set[str]
    ) -> tuple[Rejection, ...]:
        where = f"{site.provider}/{site.region or '-'}"
        if site.provider in excluded:
            message = f"{where}: provider {site.provider} excluded by the request"
            return (Rejection(Reason.USER_EXCLUDED, self.name, message),)
        message = f"{where}: the request allows only {', '.join(sorted(only))}"
        return (Rejection(Reason.USER_PROVIDER, self.name, message),)


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
