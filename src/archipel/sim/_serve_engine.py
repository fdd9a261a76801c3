"""Study 2's replicas placed by the control plane's placement engine.

Each zone of the study is declared as the control plane declares a site: a spot site
per zone (its provider, region and country, the spot price) and an on-demand site per
region (the on-demand price). Each replica the service launches is one
:meth:`SitePlacer.place <archipel.controlplane.SitePlacer.place>` call, the call the
reconciler makes for a run, with the state of the sites now as its site-state filters:

- a zone without spot at this tick is *down*;
- a zone holding as many spot replicas as it can is *full*;
- a zone holding more of the service's spot replicas than the emptiest zone still open
  is kept off by the *spread* rule (the replicas go to the emptiest zones first).

So the data class's policy, the prices and the tie-breaks are the engine's, exactly as
for a run, and a zone the policy forbids is never used.

**Memo.** The engine is a pure function of the catalog, the policy, the workload and
the site-state filters, and a study makes few distinct decisions (the state of nine
zones repeats) but many calls. :class:`ReplicaPlacer` memoises each answer on that
state (the sorted names of the sites down, full and spread out, for one market): a hit
returns the site the engine returned for the same inputs, so the memo cannot change a
decision. ``memo=False`` calls the engine every time (the tests compare both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from archipel.controlplane import SitePlacer, SiteSpec, SiteState
from archipel.core import CatalogSnapshot, InputError, Workload, parse_workload
from archipel.policy import Policy
from archipel.sim._trace import SpotTrace

#: an AWS-style zone at the start of a trace's name: ``us-east-1a_v100_1`` is zone
#: ``us-east-1a`` of region ``us-east-1``
_ZONE = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)(?P<letter>[a-z])(?:_|$)")
_SITE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class ZoneSite:
    """Where a zone's trace is: the provider, region and country its sites are declared in."""

    provider: str
    region: str
    country: str | None


def zone_site(trace: SpotTrace, snapshot: CatalogSnapshot, provider: str = "aws") -> ZoneSite:
    """The site of a zone trace named after its zone (``us-east-1a_...``), in ``provider``;
    its country is the catalog's for that region (``None`` when the catalog has none)."""
    found = _ZONE.match(trace.name)
    region = found["region"] if found else trace.name
    country = next(
        (
            c.country
            for c in snapshot.offers.classes
            if (c.provider, c.region) == (provider, region)
        ),
        None,
    )
    return ZoneSite(provider, region, country)


class ReplicaPlacer:
    """Chooses the site of each replica with the control plane's engine (see the module)."""

    def __init__(
        self,
        zones: Sequence[SpotTrace],
        sites: Sequence[ZoneSite],
        spot_price: Decimal,
        on_demand_price: Decimal,
        snapshot: CatalogSnapshot,
        policy: Policy,
        *,
        accelerator: str = "V100",
        data_class: str = "internal",
        currency: str = "USD",
        memo: bool = True,
    ) -> None:
        if len(zones) != len(sites):
            raise ValueError("one site per zone")
        names = [_SITE.sub("-", z.name)[:63] for z in zones]
        if len(set(names)) != len(names):
            raise InputError("two zone traces share a name; give each zone its own trace file")
        spot = [
            _site(name, s, f"{accelerator}:1", spot_price, currency)
            for name, s in zip(names, sites, strict=True)
        ]
        regions = {(s.provider, s.region): s for s in sites}
        on_demand = [
            _site(f"{p}.{r}.on-demand", s, f"{accelerator}:1", on_demand_price, currency)
            for (p, r), s in sorted(regions.items())
        ]
        self.zone_names = names
        self._zone_of = {name: z for z, name in enumerate(names)}
        self._spot = SitePlacer(spot, snapshot, policy)
        self._on_demand = SitePlacer(on_demand, snapshot, policy)
        self.workload: Workload = parse_workload(
            {
                "name": "llm-service",
                "kind": "inference",
                "resources": {"accelerators": f"{accelerator}:1"},
                "data": {"class": data_class},
            }
        )
        self.allowed = frozenset(self._zone_of[n] for n in self._spot.fitting(self.workload, names))
        on_demand_allowed = self._on_demand.fitting(self.workload, [s.name for s in on_demand])
        if not self.allowed and not on_demand_allowed:
            choice = self._spot.place(self.workload)
            raise InputError(
                f"data class {data_class!r}: no zone may serve it ({choice.explain()}); "
                "choose zones in places its policy allows, or another data class"
            )
        self._memo: dict[
            tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], str | None
        ] = {}
        self._use_memo = memo
        self.calls = 0  # decisions asked of the placer
        self.engine_calls = 0  # of which the engine answered (the rest: the memo)

    def spot_zone(self, has_spot: Sequence[bool], held: Sequence[int], per_zone: int) -> int | None:
        """The zone of the next spot replica (``None``: no zone can take one now).

        ``has_spot[z]``: zone ``z`` has spot at this tick; ``held[z]``: the service's spot
        replicas there now."""
        names = self.zone_names
        open_ = [z for z in sorted(self.allowed) if has_spot[z] and held[z] < per_zone]
        least = min((held[z] for z in open_), default=0)
        down = {names[z]: "no spot at this tick" for z, has in enumerate(has_spot) if not has}
        full = {
            names[z]: f"holds {per_zone} spot replicas, as many as it can"
            for z, n in enumerate(held)
            if n >= per_zone
        }
        spread = {
            names[z]: f"holds {held[z]} of the replicas, another zone {least}"
            for z in open_
            if held[z] > least
        }
        site = self._choose("spot", SiteState(down=down, full=full, spread=spread))
        return None if site is None else self._zone_of[site]

    def on_demand_site(self) -> str | None:
        """The site of the next on-demand replica (on-demand capacity is always there)."""
        return self._choose("on-demand", SiteState())

    def _choose(self, market: str, state: SiteState) -> str | None:
        """The engine's site for ``state``, from the memo when it already answered it (the
        decision depends on which sites each filter names; the messages only explain)."""
        self.calls += 1
        key = (market, tuple(sorted(state.down)), tuple(sorted(state.full)),
               tuple(sorted(state.spread)))  # fmt: skip
        if self._use_memo and key in self._memo:
            return self._memo[key]
        self.engine_calls += 1
        placer = self._spot if market == "spot" else self._on_demand
        site = placer.place(self.workload, state).site
        self._memo[key] = site
        return site


def _site(name: str, where: ZoneSite, accelerators: str, price: Decimal, currency: str) -> SiteSpec:
    return SiteSpec(
        name=name,
        backend="local",
        provider=where.provider,
        region=where.region,
        country=where.country,
        accelerators=accelerators,
        price_per_hour=price,
        currency=currency,
    )
