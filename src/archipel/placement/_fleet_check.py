"""Measure any assignment against a fleet's rules: capacity, spread and concentration.

This is how the greedy baseline's violations are shown; the MILP keeps every
rule by construction (its plans are checked against the same rules in the tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from archipel.core import CatalogSnapshot, Concentration, FleetSpec
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    CapacityLimit,
    Violation,
    ViolationFamily,
    capacity_limits,
)


def check(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    assignments: Sequence[Assignment],
) -> list[Violation]:
    """Every capacity, spread and concentration rule that ``assignments`` breaks."""
    out = _capacity(capacity_limits(spec, snapshot), assignments)
    by_workload: dict[str, list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_workload[a.workload].append(a)
    for c in cands:
        if c.units >= 2:
            out += _spread(spec, c, by_workload[c.workload.name])
    if spec.concentration is not None:
        out += _concentration(spec.concentration, assignments)
    return out


def _capacity(
    limits: Sequence[CapacityLimit], assignments: Sequence[Assignment]
) -> list[Violation]:
    out = []
    for limit in limits:
        used = sum(a.option.gpus * a.units for a in assignments if limit.covers(a.option))
        if used > limit.gpus:
            out.append(
                Violation(
                    ViolationFamily.CAPACITY,
                    limit.name,
                    Decimal(used - limit.gpus),
                    f"{limit.name}: {used} GPUs placed, capacity {limit.gpus}",
                )
            )
    return out


def _spread(spec: FleetSpec, c: Candidates, mine: Sequence[Assignment]) -> list[Violation]:
    """The spread rules a service's replicas break: providers, countries, share per provider."""
    rule = spec.spread_of(c.workload)
    name = c.workload.name
    counts: dict[str, int] = defaultdict(int)
    for a in mine:
        counts[a.option.provider] += a.units
    out = _too_few(name, "providers", "on", len(counts), rule.min_providers)
    if rule.min_countries > 1:
        countries = {a.option.country for a in mine if a.option.country}
        out += _too_few(name, "countries", "in", len(countries), rule.min_countries)
    cap = rule.provider_cap(c.units)
    return out + [
        _spread_violation(
            name, p, n - cap, f"{n} of {c.units} replicas at {p}, above the share cap ({cap})"
        )
        for p, n in sorted(counts.items())
        if n > cap
    ]


def _too_few(name: str, what: str, where: str, have: int, want: int) -> list[Violation]:
    """A service's replicas ``where`` fewer distinct ``what`` than its rule wants."""
    if have >= want:
        return []
    return [
        _spread_violation(
            name, what, want - have, f"replicas {where} {have} {what}, rule wants {want}"
        )
    ]


def _spread_violation(name: str, about: str, excess: int, what: str) -> Violation:
    """A spread rule of workload ``name`` broken: ``about`` what, by ``excess``."""
    return Violation(ViolationFamily.SPREAD, f"{name}: {about}", Decimal(excess), f"{name}: {what}")


def _concentration(conc: Concentration, assignments: Sequence[Assignment]) -> list[Violation]:
    weights = _measure(assignments, conc.measure)
    total = sum(weights.values(), Decimal(0))
    out = []
    for p, v in sorted(weights.items()):
        share = v / total if total else Decimal(0)
        limit = Decimal(str(conc.share_for(p)))
        if share > limit + Decimal("1e-9"):
            out.append(
                Violation(
                    ViolationFamily.CONCENTRATION,
                    p,
                    share - limit,
                    f"{p} holds {share:.1%} of the fleet's {conc.measure}, "
                    f"above the cap of {limit:.0%}",
                )
            )
    return out


def _measure(assignments: Sequence[Assignment], measure: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(lambda: Decimal(0))
    for a in assignments:
        unit = a.option.gpu_hours if measure == "gpu_hours" else a.option.cost
        out[a.option.provider] += unit * a.units
    return dict(out)
