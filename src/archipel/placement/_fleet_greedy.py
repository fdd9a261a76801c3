"""The greedy baseline: what a spreadsheet would do, to measure the MILP against.

Cheapest first, one unit at a time, respecting capacity and each service's
spread; commitments and fleet-wide concentration caps are ignored.
:func:`archipel.placement.check` and the account show what that costs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from archipel.core import CatalogSnapshot, FleetSpec
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    CapacityLimit,
    Violation,
    ViolationFamily,
    capacity_limits,
)


def greedy(
    spec: FleetSpec, snapshot: CatalogSnapshot, cands: Sequence[Candidates]
) -> tuple[list[Assignment], list[Violation]]:
    """Cheapest first, one unit at a time, respecting capacity and per-service spread.

    Biggest workloads (GPU-hours) go first. Commitments and fleet-wide
    concentration caps are ignored, as a spreadsheet would: :func:`check`
    and the account show what that costs.
    """
    limits = capacity_limits(spec, snapshot)
    remaining = {limit.name: limit.gpus for limit in limits}
    order = sorted(
        range(len(cands)),
        key=lambda i: -(cands[i].options[0].gpu_hours * cands[i].units),
    )
    placed: dict[tuple[int, int], int] = defaultdict(int)
    unplaced: list[Violation] = []
    for wi in order:
        unplaced += _place(spec, cands[wi], wi, limits, remaining, placed)
    assignments = [
        Assignment(cands[wi].workload.name, cands[wi].options[oi], n)
        for (wi, oi), n in sorted(placed.items())
    ]
    return assignments, unplaced


def _place(
    spec: FleetSpec,
    c: Candidates,
    wi: int,
    limits: Sequence[CapacityLimit],
    remaining: dict[str, int],
    placed: dict[tuple[int, int], int],
) -> list[Violation]:
    """Place the units of workload ``wi`` one by one; a violation for each that finds no pool."""
    rule = spec.spread_of(c.workload)
    cap = rule.provider_cap(c.units)
    per_provider: dict[str, int] = defaultdict(int)
    unplaced = []
    for _ in range(c.units):
        choice = _cheapest_fit(c, rule.min_providers, cap, per_provider, limits, remaining)
        if choice is None:
            unplaced.append(_no_pool(c))
            continue
        o = c.options[choice]
        placed[(wi, choice)] += 1
        per_provider[o.provider] += 1
        for limit in limits:
            if limit.covers(o):
                remaining[limit.name] -= o.gpus
    return unplaced


def _no_pool(c: Candidates) -> Violation:
    """One unit of ``c`` that no pool had room for."""
    name = c.workload.name
    message = f"{name}: greedy found no pool with capacity left for one unit"
    return Violation(ViolationFamily.UNPLACED, name, Decimal(1), message)


def _cheapest_fit(
    c: Candidates,
    min_providers: int,
    cap: int,
    per_provider: dict[str, int],
    limits: Sequence[CapacityLimit],
    remaining: dict[str, int],
) -> int | None:
    """The cheapest pool the next unit may use (spread and capacity left); None if none."""
    used = {p for p, n in per_provider.items() if n}
    need_new = c.units > 1 and len(used) < min_providers
    for oi, o in enumerate(c.options):
        if per_provider[o.provider] >= cap or (need_new and o.provider in used):
            continue
        if all(remaining[limit.name] >= o.gpus for limit in limits if limit.covers(o)):
            return oi
    return None
