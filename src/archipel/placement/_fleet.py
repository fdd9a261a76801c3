"""Plan a whole fleet: candidates from the engine, then the MILP or the greedy baseline.

``plan_fleet`` is the entry point. Both solvers share the candidates and the
exact account; ``check`` measures any assignment against the fleet's rules,
which is how the greedy baseline's violations are shown.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Literal

from archipel.core import CatalogSnapshot, FleetSpec, resolve_accelerator
from archipel.placement._engine import Planner
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    FleetPlan,
    Option,
    SolverReport,
    Violation,
    ViolationFamily,
    account,
    candidates,
    check_names,
    commitment_dues,
)

Solver = Literal["milp", "greedy"]


def plan_fleet(
    planner: Planner,
    spec: FleetSpec,
    solver: Solver = "milp",
    time_limit: float = 60.0,
    gap: float = 0.01,
    seed: int = 0,
) -> FleetPlan:
    """Place every workload of ``spec`` at minimum usage + commitment shortfall."""
    snapshot = planner.snapshot
    check_names(spec, snapshot)
    dues = commitment_dues(spec, snapshot)
    cands = candidates(planner, spec)
    unplaceable = tuple(c for c in cands if not c.options)
    currency = snapshot.comparison_currency
    if unplaceable:
        report = SolverReport(solver, "infeasible", None, None, None, 0, 0, 0, 0.0)
        diagnosis = tuple(
            Violation(
                ViolationFamily.UNPLACED,
                c.workload.name,
                Decimal(c.units),
                f"{c.workload.name}: no offer satisfies its hardware, data class "
                f"`{c.workload.data.class_}` and constraints",
            )
            for c in unplaceable
        )
        return FleetPlan(
            spec.name,
            False,
            (),
            account((), dues),
            currency,
            report,
            diagnosis=diagnosis,
            unplaceable=unplaceable,
        )
    if solver == "greedy":
        started = time.perf_counter()
        assignments, unplaced = greedy(spec, snapshot, cands)
        violations = tuple(unplaced) + tuple(check(spec, snapshot, cands, assignments))
        acc = account(assignments, dues)
        report = SolverReport(
            "greedy", "heuristic", acc.total, None, None, 0, 0, 0, time.perf_counter() - started
        )
        return FleetPlan(
            spec.name,
            not violations,
            tuple(assignments),
            acc,
            currency,
            report,
            violations=violations,
        )
    from archipel.placement._fleet_milp import solve as solve_milp  # highspy: only when used

    result = solve_milp(spec, snapshot, cands, dues, time_limit, gap, seed)
    if result.assignments is None:
        return FleetPlan(
            spec.name,
            False,
            (),
            account((), dues),
            currency,
            result.report,
            diagnosis=result.diagnosis,
        )
    ordered = _in_spec_order(spec, result.assignments)
    return FleetPlan(spec.name, True, ordered, account(ordered, dues), currency, result.report)


def _in_spec_order(spec: FleetSpec, assignments: Sequence[Assignment]) -> tuple[Assignment, ...]:
    position = {w.name: i for i, w in enumerate(spec.workloads)}
    return tuple(sorted(assignments, key=lambda a: (position[a.workload], a.option.placement.rank)))


def greedy(
    spec: FleetSpec, snapshot: CatalogSnapshot, cands: Sequence[Candidates]
) -> tuple[list[Assignment], list[Violation]]:
    """Cheapest first, one unit at a time, respecting capacity and per-service spread.

    Biggest workloads (GPU-hours) go first. Commitments and fleet-wide
    concentration caps are ignored, as a spreadsheet would: :func:`check`
    and the account show what that costs.
    """
    remaining = {name: cap for name, cap, _ in _limits(spec, snapshot)}
    limits = _limits(spec, snapshot)
    order = sorted(
        range(len(cands)),
        key=lambda i: -(cands[i].options[0].gpu_hours * cands[i].units),
    )
    placed: dict[tuple[int, int], int] = defaultdict(int)
    unplaced: list[Violation] = []
    for wi in order:
        c = cands[wi]
        rule = spec.spread_of(c.workload)
        cap = rule.provider_cap(c.units)
        per_provider: dict[str, int] = defaultdict(int)
        for _ in range(c.units):
            used = {p for p, n in per_provider.items() if n}
            need_new = c.units > 1 and len(used) < rule.min_providers
            choice = None
            for oi, o in enumerate(c.options):
                if per_provider[o.provider] >= cap or (need_new and o.provider in used):
                    continue
                if all(remaining[name] >= o.gpus for name, _, match in limits if match(o)):
                    choice = oi
                    break
            if choice is None:
                unplaced.append(
                    Violation(
                        ViolationFamily.UNPLACED,
                        c.workload.name,
                        Decimal(1),
                        f"{c.workload.name}: greedy found no pool with capacity left for one unit",
                    )
                )
                continue
            o = c.options[choice]
            placed[(wi, choice)] += 1
            per_provider[o.provider] += 1
            for name, _, match in limits:
                if match(o):
                    remaining[name] -= o.gpus
    assignments = [
        Assignment(cands[wi].workload.name, cands[wi].options[oi], n)
        for (wi, oi), n in sorted(placed.items())
    ]
    return assignments, unplaced


_Limit = tuple[str, int, Callable[[Option], bool]]


def _limits(spec: FleetSpec, snapshot: CatalogSnapshot) -> list[_Limit]:
    known = [a for a in snapshot.offers.accelerators if a]
    out: list[_Limit] = []
    for limit in spec.capacity:
        model = resolve_accelerator(limit.accelerator, known)
        name = f"{model} at {limit.provider}" + (f"/{limit.region}" if limit.region else "")

        def match(
            o: Option, p: str = limit.provider, r: str | None = limit.region, m: str = model
        ) -> bool:
            return o.provider == p and o.accelerator == m and (r is None or o.region == r)

        out.append((name, limit.gpus, match))
    return out


def check(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    assignments: Sequence[Assignment],
) -> list[Violation]:
    """Every capacity, spread and concentration rule that ``assignments`` breaks."""
    out: list[Violation] = []
    for name, cap, match in _limits(spec, snapshot):
        used = sum(a.option.gpus * a.units for a in assignments if match(a.option))
        if used > cap:
            out.append(
                Violation(
                    ViolationFamily.CAPACITY,
                    name,
                    Decimal(used - cap),
                    f"{name}: {used} GPUs placed, capacity {cap}",
                )
            )
    by_workload: dict[str, list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_workload[a.workload].append(a)
    for c in cands:
        if c.units < 2:
            continue
        rule = spec.spread_of(c.workload)
        mine = by_workload[c.workload.name]
        counts: dict[str, int] = defaultdict(int)
        for a in mine:
            counts[a.option.provider] += a.units
        countries = {a.option.country for a in mine if a.option.country}
        cap = rule.provider_cap(c.units)
        if len(counts) < rule.min_providers:
            out.append(
                Violation(
                    ViolationFamily.SPREAD,
                    f"{c.workload.name}: providers",
                    Decimal(rule.min_providers - len(counts)),
                    f"{c.workload.name}: replicas on {len(counts)} providers, "
                    f"rule wants {rule.min_providers}",
                )
            )
        if rule.min_countries > 1 and len(countries) < rule.min_countries:
            out.append(
                Violation(
                    ViolationFamily.SPREAD,
                    f"{c.workload.name}: countries",
                    Decimal(rule.min_countries - len(countries)),
                    f"{c.workload.name}: replicas in {len(countries)} countries, "
                    f"rule wants {rule.min_countries}",
                )
            )
        for p, n in sorted(counts.items()):
            if n > cap:
                out.append(
                    Violation(
                        ViolationFamily.SPREAD,
                        f"{c.workload.name}: {p}",
                        Decimal(n - cap),
                        f"{c.workload.name}: {n} of {c.units} replicas at {p}, "
                        f"above the share cap ({cap})",
                    )
                )
    if spec.concentration is not None:
        conc = spec.concentration
        weights: Mapping[str, Decimal] = _measure(assignments, conc.measure)
        total = sum(weights.values(), Decimal(0))
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
