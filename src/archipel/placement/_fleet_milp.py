r"""Fleet planning as a mixed-integer program, solved with HiGHS.

For workload :math:`w` with :math:`R_w` units (replicas; 1 for a job) and
candidate pools :math:`o \in O_w` (cost :math:`c_o` and :math:`g_o` GPUs per unit,
from the single-workload engine, so policy and the workload's constraints
already hold), the integer :math:`y_{wo}` counts the units placed on :math:`o`::

    minimise    sum_wo c_o y_wo + sum_p s_p                       usage + shortfall
    subject to  sum_o y_wo = R_w                                  every unit placed
                sum_{wo in k} g_o y_wo <= cap_k                   capacity limit k
                sum_{o at p} y_wo <= m_w z_wp                     spread: share cap per provider
                z_wp <= sum_{o at p} y_wo, sum_p z_wp >= P_w       spread: distinct providers
                v_wc <= sum_{o in c} y_wo <= R_w v_wc,
                sum_c v_wc >= C_w                                 spread: distinct countries
                sum_{wo at p} a_o y_wo <= share_p sum_wo a_o y_wo concentration (a = GPU-h or cost)
                s_p >= due_p - sum_{wo at p} c_o y_wo, s_p >= 0   commitment shortfall
                y integer, z and v binary

where :math:`m_w = \lfloor \text{max\_share}\cdot R_w \rfloor`. When the model is
infeasible, the same model is solved again with a penalised slack on every
capacity, spread and concentration row; the slacks that stay positive say which
rules conflict and by how much.

Nothing a solver returns is taken on trust. Every solution read back is checked
against the model (bounds, integrality, every row) and its objective is
recomputed from its columns; a warm-started solve that fails the check is run
again cold, and a cold one that fails is a :class:`SolverError`. The plan's
cost, and the gap against the solver's bound, come from the exact account of
the assignment, never from the solver's objective.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import highspy

from archipel.core import CatalogSnapshot, FleetSpec, SolverError
from archipel.placement._fleet_milp_diagnosis import diagnose
from archipel.placement._fleet_milp_model import ModelKey, build
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    SolverReport,
    Violation,
    account,
)
from archipel.placement._highs import Solution, _Builder, _UntrustedError, agree, trusted

_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kInterrupt: "interrupted",
}
_INFEASIBLE = (
    highspy.HighsModelStatus.kInfeasible,
    highspy.HighsModelStatus.kUnboundedOrInfeasible,
)


@dataclass(frozen=True)
class MilpResult:
    assignments: tuple[Assignment, ...] | None
    report: SolverReport
    diagnosis: tuple[Violation, ...] = ()


def solve(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    dues: Mapping[str, Decimal],
    time_limit: float,
    gap: float,
    seed: int,
) -> MilpResult:
    """Solve the fleet to within ``gap``; if infeasible, diagnose with penalised slacks.

    1. The LP relaxation gives a lower bound; in an assignment-shaped model
       almost every workload comes out integral.
    2. Those workloads are fixed and the small MIP that is left is solved:
       an incumbent whose gap is measured against the LP bound.
    3. Only if that gap is too wide does the full MIP run, warm-started with
       the incumbent, for the rest of the time. If its answer fails the check
       (see the module's docstring), it runs again cold.

    The report's objective is the exact cost of the assignment read back, and
    its gap is measured from that cost to the solver's bound.
    """
    started = time.perf_counter()
    b, key = build(spec, snapshot, cands, dues, relax=False)
    run = _Solve(spec, snapshot, cands, dues, gap, seed, started, started + time_limit, b, key)
    relaxed = b.solve(time_limit, gap, seed, integral=False)
    if relaxed.getModelStatus() in _INFEASIBLE:
        return run.infeasible()
    lp = trusted(b, relaxed, "the LP relaxation", integral=False)
    solved = relaxed.getModelStatus() == highspy.HighsModelStatus.kOptimal
    bound = lp.objective if lp is not None and solved else -math.inf  # a bound only if optimal
    best = run.incumbent(lp)
    status = "optimal"
    if best is None or _rel_gap(best.objective, bound) > gap:
        best, bound, status = run.improve(best, bound)
    if best is None and status == "infeasible":  # the LP fits, no integer plan does
        return run.infeasible()
    if best is None:
        return MilpResult(None, run.report(f"{status} (no solution)", bound=bound))
    return run.result(best, bound, status)


@dataclass(frozen=True)
class _Solve:
    """One call of :func:`solve`: the fleet, the solver's settings, its clock and its model."""

    spec: FleetSpec
    snapshot: CatalogSnapshot
    cands: Sequence[Candidates]
    dues: Mapping[str, Decimal]
    gap: float
    seed: int
    started: float
    deadline: float
    b: _Builder
    key: ModelKey

    def left(self, floor: float) -> float:
        """The time left before the deadline, but at least ``floor`` seconds."""
        return max(floor, self.deadline - time.perf_counter())

    def incumbent(self, lp: Solution | None) -> Solution | None:
        """The workloads the LP placed in whole units fixed, the small MIP that is left."""
        fixed = _integral_workloads(lp, self.key, self.cands)
        small = self.b.solve(self.left(0.1), self.gap, self.seed, fixed=fixed)
        try:
            return self.b.checked(small, fixed=fixed)
        except _UntrustedError:
            return None  # no incumbent: the full MIP runs cold

    def improve(self, best: Solution | None, bound: float) -> tuple[Solution | None, float, str]:
        """The full MIP, warm-started with ``best``: the better solution, the bound, the status."""
        full, found = self._full_mip(best.values if best is not None else None)
        info = full.getInfo()
        bound = max(bound, info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else bound
        if found is not None and (best is None or found.objective < best.objective):
            best = found
        return best, bound, _STATUS.get(full.getModelStatus(), str(full.getModelStatus()))

    def _full_mip(self, start: list[float] | None) -> tuple[highspy.Highs, Solution | None]:
        """Solved from ``start``, then again cold if that answer fails its check."""
        full = self.b.solve(self.left(0.1), self.gap, self.seed, start=start)
        try:
            return full, self.b.checked(full)
        except _UntrustedError:
            if start is None:
                raise
        full = self.b.solve(self.left(0.1), self.gap, self.seed)  # cold
        return full, trusted(self.b, full, "the MIP, solved again without a warm start")

    def infeasible(self) -> MilpResult:
        """No plan: the relaxed model says which rules conflict."""
        rb, rkey = build(self.spec, self.snapshot, self.cands, self.dues, relax=True)
        rh = rb.solve(self.left(1.0), self.gap, self.seed)
        solution = trusted(rb, rh, "the relaxed model")
        report = self.report("infeasible")
        return MilpResult(None, report, diagnose(solution, rkey, self.cands, self.spec))

    def result(self, best: Solution, bound: float, status: str) -> MilpResult:
        """The plan read back from ``best``, priced exactly and checked against the bound."""
        assignments = _read(best.values, self.key, self.cands)
        exact = account(assignments, self.dues).total
        _check_cost(exact, best.objective, bound)
        rel = _rel_gap(float(exact), bound)
        report = self.report("optimal" if rel <= self.gap else status, exact, bound, _gap(rel))
        return MilpResult(assignments, report)

    def report(
        self,
        status: str,
        objective: Decimal | None = None,
        bound: float = -math.inf,
        gap: float | None = None,
    ) -> SolverReport:
        return SolverReport(
            solver="highs",
            status=status,
            objective=objective,
            bound=_dec(bound) if math.isfinite(bound) else None,
            gap=gap,
            variables=len(self.b.cost),
            constraints=len(self.b.row_lower),
            integer_variables=sum(self.b.integer),
            seconds=time.perf_counter() - self.started,
        )


def _integral_workloads(
    lp: Solution | None, key: ModelKey, cands: Sequence[Candidates]
) -> dict[int, float]:
    """The columns of every workload the LP placed in whole units, at those units."""
    fixed: dict[int, float] = {}
    if lp is None:
        return fixed
    for wi, c in enumerate(cands):
        cols = [key.y[(wi, oi)] for oi in range(len(c.options))]
        if all(abs(lp.values[col] - round(lp.values[col])) < 1e-9 for col in cols):
            fixed.update({col: float(round(lp.values[col])) for col in cols})
    return fixed


def _check_cost(exact: Decimal, objective: float, bound: float) -> None:
    """The plan's exact cost must be its columns' cost, and not below the proved bound."""
    if float(exact) > objective and not agree(float(exact), objective):
        raise SolverError(
            f"the fleet plan read back from the solver costs {exact:,.2f}, but the solver's "
            f"columns cost {objective:,.2f}; no plan is given"
        )
    if math.isfinite(bound) and float(exact) < bound and not agree(float(exact), bound):
        raise SolverError(
            f"the fleet plan read back from the solver costs {exact:,.2f}, below the bound "
            f"{bound:,.2f} the solver claims to have proved; no plan is given"
        )


def _rel_gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(abs(objective), 1e-9)


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def _gap(value: float) -> float | None:
    """The gap as reported: None without a bound (JSON has no infinity)."""
    return round(max(0.0, value), 6) if math.isfinite(value) else None


def _read(
    values: Sequence[float], key: ModelKey, cands: Sequence[Candidates]
) -> tuple[Assignment, ...]:
    """The assignments a solution's columns hold: the pools with units on them."""
    units = {pool: round(values[col]) for pool, col in key.y.items()}
    return tuple(
        Assignment(cands[wi].workload.name, cands[wi].options[oi], n)
        for (wi, oi), n in units.items()
        if n > 0
    )
