"""Plan a whole fleet: candidates from the engine, then the MILP or the greedy baseline.

``plan_fleet`` is the entry point. Both solvers share the candidates and the
exact account (:mod:`archipel.placement._fleet_model`); the MILP is in
:mod:`archipel.placement._fleet_milp`, the greedy baseline in
:mod:`archipel.placement._fleet_greedy`, and :func:`archipel.placement.check`
(:mod:`archipel.placement._fleet_check`) shows the rules greedy breaks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Literal

from archipel.core import CatalogSnapshot, FleetSpec
from archipel.placement._engine import Planner
from archipel.placement._fleet_check import check
from archipel.placement._fleet_greedy import greedy
from archipel.placement._fleet_model import (
    Account,
    Assignment,
    Candidates,
    FleetPlan,
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
    if unplaceable:
        return _unplaceable(spec, snapshot, solver, unplaceable, dues)
    if solver == "greedy":
        return _greedy_plan(spec, snapshot, cands, dues)
    from archipel.placement._fleet_milp import solve as solve_milp  # highspy: only when used

    result = solve_milp(spec, snapshot, cands, dues, time_limit, gap, seed)
    if result.assignments is None:
        return _no_plan(spec, snapshot, dues, result.report, result.diagnosis)
    ordered = _in_spec_order(spec, result.assignments)
    return _placed(spec, snapshot, ordered, account(ordered, dues), result.report)


def _unplaceable(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    solver: Solver,
    unplaceable: tuple[Candidates, ...],
    dues: Mapping[str, Decimal],
) -> FleetPlan:
    """No plan: workloads that no offer can host, each with what rejected its offers."""
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
    return _no_plan(spec, snapshot, dues, report, diagnosis, unplaceable)


def _no_plan(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    dues: Mapping[str, Decimal],
    report: SolverReport,
    diagnosis: tuple[Violation, ...],
    unplaceable: tuple[Candidates, ...] = (),
) -> FleetPlan:
    """An infeasible fleet: nothing placed, every commitment all shortfall."""
    return FleetPlan(
        name=spec.name,
        feasible=False,
        assignments=(),
        account=account((), dues),
        currency=snapshot.comparison_currency,
        solver=report,
        diagnosis=diagnosis,
        unplaceable=unplaceable,
    )


def _greedy_plan(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    dues: Mapping[str, Decimal],
) -> FleetPlan:
    started = time.perf_counter()
    assignments, unplaced = greedy(spec, snapshot, cands)
    violations = tuple(unplaced) + tuple(check(spec, snapshot, cands, assignments))
    acc = account(assignments, dues)
    report = SolverReport(
        "greedy", "heuristic", acc.total, None, None, 0, 0, 0, time.perf_counter() - started
    )
    return _placed(spec, snapshot, assignments, acc, report, violations)


def _placed(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    assignments: Sequence[Assignment],
    acc: Account,
    report: SolverReport,
    violations: tuple[Violation, ...] = (),
) -> FleetPlan:
    """A plan that places every unit: feasible unless it breaks a rule."""
    return FleetPlan(
        spec.name,
        not violations,
        tuple(assignments),
        acc,
        snapshot.comparison_currency,
        report,
        violations=violations,
    )


def _in_spec_order(spec: FleetSpec, assignments: Sequence[Assignment]) -> tuple[Assignment, ...]:
    position = {w.name: i for i, w in enumerate(spec.workloads)}
    return tuple(sorted(assignments, key=lambda a: (position[a.workload], a.option.placement.rank)))
