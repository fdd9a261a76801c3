"""Choosing a site for a run with the same placement engine as ``archipel plan``.

The declared sites become a small offer table (one offer per site, with its
provider, region, country, accelerators and price: a spot price for a spot
site, which only a run that tolerates spot may take), joined to the catalog's
provider facts and jurisdictions, so a data class allows or forbids a site
exactly as it would a catalog offer. The state of the sites now (blocked for
this run after failures, down, full, kept off by the spread rule) is applied
by the engine's site-state filters, each with its :class:`Reason`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from archipel.catalog import OfferRow, build_table
from archipel.controlplane._sites import SiteSpec
from archipel.core import (
    CatalogSnapshot,
    InputError,
    Reason,
    Rejection,
    Workload,
    canonical_accelerator,
    parse_accelerator_spec,
    to_nano,
)
from archipel.placement import (
    DEFAULT_SCORES,
    PlacementRequest,
    Plan,
    Planner,
    ScorePlugin,
    policy_verdicts,
    site_filters,
)
from archipel.policy import Policy


@dataclass(frozen=True, slots=True)
class SiteState:
    """What the control plane knows of its sites for one decision: site name -> why not."""

    blocked: Mapping[str, str] = field(default_factory=dict)  # after failures of this run
    down: Mapping[str, str] = field(default_factory=dict)
    full: Mapping[str, str] = field(default_factory=dict)
    spread: Mapping[str, str] = field(default_factory=dict)  # kept off by the spread rule


@dataclass(frozen=True, slots=True)
class SiteChoice:
    """The chosen site (or ``None``), the plan that explains it, and why every other site lost.

    ``rejections`` holds, per declared site that lost, the first filter that
    turned it down (in site-name order); ``invalid`` says why the request could
    not be planned at all (then there is no plan).
    """

    site: str | None
    plan: Plan | None
    rejections: tuple[Rejection, ...] = ()
    invalid: str | None = None

    @property
    def waits(self) -> bool:
        """No site now, but one that fits is only down, full or kept off by the spread rule."""
        return self.site is None and any(r.reason.transient for r in self.rejections)

    def explain(self, *, without: Collection[Reason] = ()) -> str:
        """The rejections as one line (those of ``without`` left out)."""
        if self.invalid is not None:
            return f"no declared site can take it: {self.invalid}"
        parts = [r.message for r in self.rejections if r.reason not in without]
        return "; ".join(parts) or "no site is available"


class SitePlacer:
    """Places runs on sites under a policy, using the catalog's provider facts.

    One planner over every declared site; the state of the sites at a decision
    (blocked, down, full, spread) is applied by filter plugins of that decision,
    so each placement is one engine call that also says why every other site lost.
    ``scores`` are the planner's score plugins (price alone by default).
    """

    def __init__(
        self,
        sites: Sequence[SiteSpec],
        catalog: CatalogSnapshot,
        policy: Policy,
        scores: Sequence[ScorePlugin] = DEFAULT_SCORES,
    ) -> None:
        self.sites = {s.name: s for s in sites}
        self.catalog = catalog
        self.policy = policy
        self.planner = Planner(self._snapshot(self.sites), policy, scores=scores)
        self._classes: Mapping[str, tuple[str, ...]] | None = None

    def _snapshot(self, names: Collection[str]) -> CatalogSnapshot:
        rows = []
        for name in sorted(names):
            s = self.sites[name]
            accel = parse_accelerator_spec(s.accelerators)
            price = to_nano(s.price_per_hour)
            # a spot site sells spot only: a run that does not tolerate spot never goes there
            spot = s.market == "spot"
            rows.append(
                OfferRow(
                    provider=s.provider,
                    region=s.region,
                    zone="",
                    instance_type=s.name,
                    accelerator=canonical_accelerator(accel.model),
                    accelerator_count=accel.count,
                    gpu_memory_mib=0,
                    vcpus=None,
                    memory_gib=None,
                    price=-1 if spot else price,
                    spot_price=price if spot else -1,
                    currency=s.currency,
                    source=f"site {s.name}",
                    country=s.country,
                )
            )
        table = build_table(rows, {}, self.catalog.fx_rates)
        return CatalogSnapshot(
            offers=table,
            providers=self.catalog.providers,
            jurisdictions=self.catalog.jurisdictions,
            comparison_currency=self.catalog.comparison_currency,
            fx_rates=self.catalog.fx_rates,
        )

    def data_classes(self) -> Mapping[str, tuple[str, ...]]:
        """Per declared site: the policy's data classes that may use it, by the engine's own
        policy verdicts (those of its policy filter), in the policy's order."""
        if self._classes is None:
            self._classes = self._allowed_classes()
        return self._classes

    def _allowed_classes(self) -> dict[str, tuple[str, ...]]:
        snapshot = self.planner.snapshot
        offers = snapshot.offers
        class_of = {
            offers.strings[int(i)]: int(c)
            for i, c in zip(offers.col("instance_idx"), offers.col("class_idx"), strict=True)
        }
        allowed: dict[str, list[str]] = {name: [] for name in self.sites}
        for name, data_class in self.policy.data_classes.items():
            verdicts = policy_verdicts(snapshot, data_class)
            for site, index in class_of.items():
                if not verdicts[index]:
                    allowed[site].append(name)
        return {site: tuple(classes) for site, classes in allowed.items()}

    def fitting(self, workload: Workload, among: Collection[str]) -> list[str]:
        """Every site among ``among`` that fits the workload and its data class, cheapest first."""
        if not among:
            return []
        try:
            plan = self.planner.plan(PlacementRequest.from_workload(workload), top=len(self.sites))
        except InputError:
            return []
        wanted = set(among) - set(self.wrong_kind(workload))
        return [p.offer.instance_type for p in plan.placements if p.offer.instance_type in wanted]

    def wrong_kind(self, workload: Workload) -> dict[str, str]:
        """The sites that do not run this kind of workload, each with why."""
        return {
            name: f"{name} runs {' and '.join(sorted(s.runs))} workloads only, not {workload.kind}"
            for name, s in self.sites.items()
            if workload.kind not in s.runs
        }

    def place(self, workload: Workload, state: SiteState | None = None) -> SiteChoice:
        """The cheapest site that fits the workload, its data class and the sites' state now."""
        state = state or SiteState()
        extra = site_filters(
            state.blocked, state.down, state.full, state.spread, self.wrong_kind(workload)
        )
        missing = unoffered(workload, list(self.sites.values()))
        if missing is not None:
            return SiteChoice(None, None, invalid=missing)
        try:
            plan = self.planner.plan(
                PlacementRequest.from_workload(workload), top=1, extra=extra, itemise=True
            )
        except InputError as exc:
            return SiteChoice(None, None, invalid=str(exc))
        rejections = tuple(r.rejection for r in plan.itemised)
        if not plan.placements:
            return SiteChoice(None, plan, rejections)
        return SiteChoice(plan.placements[0].offer.instance_type, plan, rejections)


def unoffered(workload: Workload, sites: Sequence[SiteSpec]) -> str | None:
    """When none of ``sites`` offers any accelerator model the workload asks for: what
    they do offer (``no site offers H100; the sites offer: cpu:1 (paris, frankfurt)``)."""
    wanted = [canonical_accelerator(a.model).lower() for a in workload.resources.accelerators]
    offers: dict[str, list[str]] = {}
    for site in sites:
        offered = parse_accelerator_spec(site.accelerators).model
        if canonical_accelerator(offered).lower() in wanted:
            return None
        offers.setdefault(site.accelerators, []).append(site.name)
    asked = " or ".join(dict.fromkeys(a.model for a in workload.resources.accelerators))
    listed = "; ".join(f"{spec} ({', '.join(names)})" for spec, names in offers.items())
    return f"no site offers {asked}; the sites offer: {listed}"
