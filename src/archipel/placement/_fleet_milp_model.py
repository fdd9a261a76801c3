r"""The fleet MILP: its columns and rows, and a key to read a solution back.

The formulation is in :mod:`archipel.placement._fleet_milp`'s docstring. With
``relax``, every capacity, spread and concentration row gets a penalised slack
column, so that the model always has a solution and the slacks left positive
say which rules conflict (:mod:`archipel.placement._fleet_milp_diagnosis`).

Columns and rows are added in a fixed order (workloads in the spec's order,
providers and countries sorted), so that the same fleet gives the same model,
and HiGHS, seeded, the same answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from archipel.core import CatalogSnapshot, Concentration, FleetSpec
from archipel.placement._fleet_model import (
    Candidates,
    CapacityLimit,
    Option,
    ViolationFamily,
    capacity_limits,
)
from archipel.placement._highs import _Builder

_Pool = tuple[int, int]  # (workload, option): an index into the candidates
_Grouping = Callable[[Option], str | None]  # a pool's provider, country, ...


@dataclass
class ModelKey:
    """Which columns and rows mean what, to read a solution back."""

    y: dict[_Pool, int] = field(default_factory=dict)  # units placed on a pool: its column
    # slack columns: (column, family, subject, unit)
    slacks: list[tuple[int, ViolationFamily, str, str]] = field(default_factory=list)
    # capacity limits by name: the limit and the pools it covers
    groups: dict[str, tuple[CapacityLimit, list[_Pool]]] = field(default_factory=dict)
    owner: dict[int, int] = field(default_factory=dict)  # spread slack column -> workload


@dataclass(frozen=True)
class _Slacks:
    """Penalised slack columns that let the soft rows give way (the relaxed model)."""

    b: _Builder
    key: ModelKey
    penalty: float

    def add(self, family: ViolationFamily, subject: str, unit: str, weight: float = 1.0) -> int:
        col = self.b.var(self.penalty * weight, 0.0, math.inf, False)
        self.key.slacks.append((col, family, subject, unit))
        return col

    def spread(self, subject: str, unit: str) -> Callable[[], int]:
        """What adds a spread row's slack column, when the row is written."""
        return lambda: self.add(ViolationFamily.SPREAD, subject, unit)


def build(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    dues: Mapping[str, Decimal],
    relax: bool,
) -> tuple[_Builder, ModelKey]:
    """The model; with ``relax``, every soft family gets a penalised slack."""
    b, key = _Builder(), ModelKey()
    model = _Formulation(b, key, cands, _Slacks(b, key, _penalty(cands)) if relax else None)
    for wi, c in enumerate(cands):
        model.placements(wi, c, spec)
    for limit in capacity_limits(spec, snapshot):
        model.capacity(limit)
    # Per-provider totals are variables of their own, so each y appears in one
    # row per measure instead of one row per provider (the rows stay sparse).
    conc = spec.concentration
    providers = {o.provider for c in cands for o in c.options}
    spent = set(dues) | (providers if conc and conc.measure == "spend" else set())
    spend_of = model.totals(lambda o: float(o.cost), spent)
    if conc is not None:
        model.concentration(conc, spend_of, providers)
    for provider in sorted(dues):
        model.shortfall(spend_of[provider], dues[provider])
    return b, key


def _penalty(cands: Sequence[Candidates]) -> float:
    """A slack's cost per unit: more than any placement of the whole fleet costs."""
    worst = sum(
        float(max((o.cost for o in c.options), default=Decimal(0))) * c.units for c in cands
    )
    return 10.0 * worst + 1e6


@dataclass(frozen=True)
class _Formulation:
    """Writes the fleet's rules into ``b``, and what they mean into ``key``."""

    b: _Builder
    key: ModelKey
    cands: Sequence[Candidates]
    slacks: _Slacks | None  # None: the rules are hard

    def placements(self, wi: int, c: Candidates, spec: FleetSpec) -> None:
        """A column per pool of workload ``wi`` (units placed there), every unit placed, spread."""
        for oi, o in enumerate(c.options):
            self.key.y[(wi, oi)] = self.b.var(float(o.cost), 0.0, float(c.units), True)
        self.b.row({self.key.y[(wi, oi)]: 1.0 for oi in range(len(c.options))}, c.units, c.units)
        if c.units > 1:
            self.spread(wi, c, spec)

    def capacity(self, limit: CapacityLimit) -> None:
        """The GPUs placed on the pools ``limit`` covers stay within it."""
        members = [
            (wi, oi, o)
            for wi, c in enumerate(self.cands)
            for oi, o in enumerate(c.options)
            if limit.covers(o)
        ]
        self.key.groups[limit.name] = (limit, [(wi, oi) for wi, oi, _ in members])
        coeffs = {self.key.y[(wi, oi)]: float(o.gpus) for wi, oi, o in members}
        if self.slacks is not None:
            coeffs[self.slacks.add(ViolationFamily.CAPACITY, limit.name, "GPUs")] = -1.0
        self.b.row(coeffs, -math.inf, float(limit.gpus))

    def totals(self, unit: Callable[[Option], float], providers: set[str]) -> dict[str, int]:
        """A variable per provider equal to the sum of ``unit`` over its placed units."""
        coeffs: dict[str, dict[int, float]] = {p: {} for p in providers}
        for wi, c in enumerate(self.cands):
            for oi, o in enumerate(c.options):
                if o.provider in coeffs:
                    coeffs[o.provider][self.key.y[(wi, oi)]] = unit(o)
        out = {}
        for provider in sorted(providers):
            var = self.b.var(0.0, 0.0, math.inf, False)
            self.b.row({**coeffs[provider], var: -1.0}, 0.0, 0.0)
            out[provider] = var
        return out

    def concentration(
        self, conc: Concentration, spend_of: Mapping[str, int], providers: set[str]
    ) -> None:
        """Per capped provider: its share of the fleet's measure stays within its cap."""
        if conc.measure == "spend":
            measure = dict(spend_of)
        else:
            measure = self.totals(lambda o: float(o.gpu_hours), providers)
        total = self.b.var(0.0, 0.0, math.inf, False)
        self.b.row({**{col: 1.0 for col in measure.values()}, total: -1.0}, 0.0, 0.0)
        for provider in sorted(measure):
            share = conc.share_for(provider)
            if share >= 1:
                continue
            coeffs = {measure[provider]: 1.0, total: -share}
            if self.slacks is not None:
                family = ViolationFamily.CONCENTRATION
                coeffs[self.slacks.add(family, provider, conc.measure, 1e-3)] = -1.0
            self.b.row(coeffs, -math.inf, 0.0)

    def shortfall(self, spent: int, due: Decimal) -> None:
        """A commitment's shortfall column: at least what is due less what is spent."""
        shortfall = self.b.var(1.0, 0.0, math.inf, False)
        self.b.row({spent: 1.0, shortfall: 1.0}, float(due), math.inf)

    def spread(self, wi: int, c: Candidates, spec: FleetSpec) -> None:
        """A service's spread: a share cap and a minimum per provider, a minimum of countries."""
        rule = spec.spread_of(c.workload)
        cap = rule.provider_cap(c.units)
        name = c.workload.name
        first = len(self.key.slacks)
        if rule.min_providers > 1 or cap < c.units:
            per_provider = self._columns_by(wi, c, lambda o: o.provider)
            counted = [
                self._indicator(cols, float(cap), self._give(f"{name}: share at {p}", "replicas"))
                for p, cols in sorted(per_provider.items())
            ]
            self._at_least(
                counted, rule.min_providers, self._give(f"{name}: providers", "providers")
            )
        if rule.min_countries > 1:
            per_country = self._columns_by(wi, c, lambda o: o.country)
            counted = [
                self._indicator(cols, float(c.units)) for _, cols in sorted(per_country.items())
            ]
            self._at_least(
                counted, rule.min_countries, self._give(f"{name}: countries", "countries")
            )
        for col, *_ in self.key.slacks[first:]:
            self.key.owner[col] = wi

    def _columns_by(self, wi: int, c: Candidates, group: _Grouping) -> dict[str, list[int]]:
        """The columns of workload ``wi``, grouped (a pool whose group is unknown is left out)."""
        out: dict[str, list[int]] = defaultdict(list)
        for oi, o in enumerate(c.options):
            name = group(o)
            if name:
                out[name].append(self.key.y[(wi, oi)])
        return out

    def _give(self, subject: str, unit: str) -> Callable[[], int] | None:
        return self.slacks.spread(subject, unit) if self.slacks is not None else None

    def _indicator(
        self, cols: Sequence[int], most: float, give: Callable[[], int] | None = None
    ) -> int:
        """A binary column, 1 when ``cols`` hold a unit, and then they hold at most ``most``."""
        z = self.b.var(0.0, 0.0, 1.0, True)
        coeffs = {col: 1.0 for col in cols}
        coeffs[z] = -most
        if give is not None:
            coeffs[give()] = -1.0
        self.b.row(coeffs, -math.inf, 0.0)  # units here only if counted (and then <= most)
        used = {col: -1.0 for col in cols}
        used[z] = 1.0
        self.b.row(used, -math.inf, 0.0)  # counted towards a minimum only if it has a unit
        return z

    def _at_least(self, counted: Sequence[int], least: int, give: Callable[[], int] | None) -> None:
        """At least ``least`` of the ``counted`` indicators are 1."""
        coeffs = {z: 1.0 for z in counted}
        if give is not None:
            coeffs[give()] = 1.0
        self.b.row(coeffs, float(least), math.inf)
