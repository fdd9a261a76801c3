"""Choosing a site for a run with the same placement engine as ``archipel plan``.

The declared sites become a small offer table (one offer per site, with its
provider, region, country, accelerators and price), joined to the catalog's
provider facts and jurisdictions, so a data class allows or forbids a site
exactly as it would a catalog offer.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from archipel.catalog import OfferRow, build_table
from archipel.controlplane._sites import SiteSpec
from archipel.core import (
    NANO,
    CatalogSnapshot,
    InputError,
    Workload,
    canonical_accelerator,
    parse_accelerator_spec,
)
from archipel.placement import PlacementRequest, Plan, Planner
from archipel.policy import Policy


@dataclass(frozen=True)
class SiteChoice:
    """The chosen site (or ``None``) and the plan that explains the choice."""

    site: str | None
    plan: Plan | None
    error: str | None = None


class SitePlacer:
    """Places runs on sites under a policy, using the catalog's provider facts."""

    def __init__(self, sites: Sequence[SiteSpec], catalog: CatalogSnapshot, policy: Policy) -> None:
        self.sites = {s.name: s for s in sites}
        self.catalog = catalog
        self.policy = policy
        self._planners: dict[frozenset[str], Planner] = {}

    def _planner(self, names: Collection[str]) -> Planner:
        """One planner per set of sites, kept: a round reuses the same few sets."""
        key = frozenset(names)
        planner = self._planners.get(key)
        if planner is None:
            if len(self._planners) > 256:
                self._planners.clear()
            planner = Planner(self._snapshot(key), self.policy)
            self._planners[key] = planner
        return planner

    def _snapshot(self, names: Collection[str]) -> CatalogSnapshot:
        rows = []
        for name in sorted(names):
            s = self.sites[name]
            accel = parse_accelerator_spec(s.accelerators)
            price = int(s.price_per_hour * NANO)
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
                    price=price,
                    spot_price=-1,
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

    def fitting(self, workload: Workload, among: Collection[str]) -> list[str]:
        """Every site among ``among`` that fits the workload and its data class, cheapest first."""
        if not among:
            return []
        try:
            plan = self._planner(among).plan(
                PlacementRequest.from_workload(workload), top=len(among)
            )
        except InputError:
            return []
        return [p.offer.instance_type for p in plan.placements]

    def place(self, workload: Workload, among: Collection[str]) -> SiteChoice:
        """The cheapest site among ``among`` that fits the workload and its data class."""
        if not among:
            return SiteChoice(None, None, "no site is available")
        missing = unoffered(workload, [self.sites[n] for n in among])
        if missing is not None:
            return SiteChoice(None, None, missing)
        planner = self._planner(among)
        request = PlacementRequest.from_workload(workload)
        try:
            plan = planner.plan(request, top=1)
        except InputError as exc:
            return SiteChoice(None, None, f"no declared site can take it: {exc}")
        if not plan.placements:
            return SiteChoice(None, plan, "; ".join(r.example for r in plan.rejections))
        return SiteChoice(plan.placements[0].offer.instance_type, plan)


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
