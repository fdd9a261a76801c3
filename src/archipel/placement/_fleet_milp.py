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
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import highspy
import numpy as np

from archipel.core import CatalogSnapshot, FleetSpec, resolve_accelerator
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    Option,
    SolverReport,
    Violation,
)


@dataclass
class _Builder:
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def var(self, cost: float, lower: float, upper: float, integer: bool) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, coeffs: Mapping[int, float], lower: float, upper: float) -> int:
        for col, val in coeffs.items():
            if val != 0:
                self.index.append(col)
                self.value.append(val)
        self.starts.append(len(self.index))
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        return len(self.row_lower) - 1

    def solve(self, time_limit: float, gap: float, seed: int) -> highspy.Highs:
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = len(self.cost)
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.asarray(self.cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(self.lower, dtype=np.float64)
        lp.col_upper_ = np.asarray([inf if math.isinf(u) else u for u in self.upper])
        lp.row_lower_ = np.asarray([-inf if math.isinf(v) else v for v in self.row_lower])
        lp.row_upper_ = np.asarray([inf if math.isinf(v) else v for v in self.row_upper])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = lp.num_col_
        lp.a_matrix_.num_row_ = lp.num_row_
        lp.a_matrix_.start_ = np.asarray(self.starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.asarray(self.index, dtype=np.int32)
        lp.a_matrix_.value_ = np.asarray(self.value, dtype=np.float64)
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in self.integer
        ]
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", float(gap))
        h.setOptionValue("random_seed", int(seed))
        h.setOptionValue("threads", 1)
        h.passModel(lp)
        h.run()
        return h


@dataclass
class _Rows:
    """Which rows and slack columns mean what, to read a solution back."""

    y: dict[tuple[int, int], int] = field(default_factory=dict)  # (workload, option) -> col
    slacks: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # col, family, subject, unit
    groups: dict[str, tuple[int, list[tuple[int, int]]]] = field(default_factory=dict)  # capacity


def _capacity_groups(
    spec: FleetSpec, snapshot: CatalogSnapshot, cands: Sequence[Candidates]
) -> list[tuple[str, int, list[tuple[int, int, Option]]]]:
    known = [a for a in snapshot.offers.accelerators if a]
    groups = []
    for limit in spec.capacity:
        model = resolve_accelerator(limit.accelerator, known)
        where = limit.provider + (f"/{limit.region}" if limit.region else "")
        members = [
            (wi, oi, o)
            for wi, c in enumerate(cands)
            for oi, o in enumerate(c.options)
            if o.provider == limit.provider
            and o.accelerator == model
            and (limit.region is None or o.region == limit.region)
        ]
        groups.append((f"{model} at {where}", limit.gpus, members))
    return groups


def build(
    spec: FleetSpec,
    snapshot: CatalogSnapshot,
    cands: Sequence[Candidates],
    dues: Mapping[str, Decimal],
    relax: bool,
) -> tuple[_Builder, _Rows]:
    """The model; with ``relax``, every soft family gets a penalised slack."""
    b, rows = _Builder(), _Rows()
    worst = sum(
        float(max((o.cost for o in c.options), default=Decimal(0))) * c.units for c in cands
    )
    penalty = 10.0 * worst + 1e6  # any slack costs more than any placement

    def slack(family: str, subject: str, unit: str, weight: float = 1.0) -> int:
        col = b.var(penalty * weight, 0.0, math.inf, False)
        rows.slacks.append((col, family, subject, unit))
        return col

    by_provider: dict[str, list[int]] = defaultdict(list)
    for wi, c in enumerate(cands):
        for oi, o in enumerate(c.options):
            col = b.var(float(o.cost), 0.0, float(c.units), True)
            rows.y[(wi, oi)] = col
            by_provider[o.provider].append(col)
        b.row({rows.y[(wi, oi)]: 1.0 for oi in range(len(c.options))}, c.units, c.units)
        if c.units > 1:
            _spread(b, rows, spec, c, wi, slack if relax else None)
    for name, cap, members in _capacity_groups(spec, snapshot, cands):
        rows.groups[name] = (cap, [(wi, oi) for wi, oi, _ in members])
        coeffs = {rows.y[(wi, oi)]: float(o.gpus) for wi, oi, o in members}
        if relax:
            coeffs[slack("capacity", name, "GPUs")] = -1.0
        b.row(coeffs, -math.inf, float(cap))
    if spec.concentration is not None:
        conc = spec.concentration
        measure = [
            (rows.y[(wi, oi)], o, float(o.gpu_hours if conc.measure == "gpu_hours" else o.cost))
            for wi, c in enumerate(cands)
            for oi, o in enumerate(c.options)
        ]
        scale = max((a for _, _, a in measure), default=1.0) or 1.0
        for provider in sorted(by_provider):
            share = conc.share_for(provider)
            if share >= 1:
                continue
            coeffs = {
                col: ((1.0 if o.provider == provider else 0.0) - share) * a / scale
                for col, o, a in measure
            }
            if relax:
                coeffs[slack("concentration", provider, conc.measure, 1.0 / scale)] = -1.0
            b.row(coeffs, -math.inf, 0.0)
    for provider in sorted(dues):
        s = b.var(1.0, 0.0, math.inf, False)
        coeffs = {
            rows.y[(wi, oi)]: float(o.cost)
            for wi, c in enumerate(cands)
            for oi, o in enumerate(c.options)
            if o.provider == provider
        }
        coeffs[s] = 1.0
        b.row(coeffs, float(dues[provider]), math.inf)
    return b, rows


def _spread(
    b: _Builder, rows: _Rows, spec: FleetSpec, c: Candidates, wi: int, slack: object
) -> None:
    rule = spec.spread_of(c.workload)
    cap = min(c.units, math.floor(rule.max_share_per_provider * c.units + 1e-9))
    per_provider: dict[str, list[int]] = defaultdict(list)
    per_country: dict[str, list[int]] = defaultdict(list)
    for oi, o in enumerate(c.options):
        per_provider[o.provider].append(rows.y[(wi, oi)])
        per_country[o.country or "?"].append(rows.y[(wi, oi)])
    name = c.workload.name
    if rule.min_providers > 1 or cap < c.units:
        z_cols = []
        for provider in sorted(per_provider):
            z = b.var(0.0, 0.0, 1.0, True)
            z_cols.append(z)
            coeffs = {col: 1.0 for col in per_provider[provider]}
            coeffs[z] = -float(cap)
            b.row(coeffs, -math.inf, 0.0)  # units at p only if p is counted (and then <= cap)
            used = {col: -1.0 for col in per_provider[provider]}
            used[z] = 1.0
            b.row(used, -math.inf, 0.0)  # p counts towards min_providers only if it has a unit
        coeffs = {z: 1.0 for z in z_cols}
        if callable(slack):
            coeffs[slack("spread", f"{name}: providers", "providers")] = 1.0
        b.row(coeffs, float(rule.min_providers), math.inf)
    if rule.min_countries > 1:
        v_cols = []
        for country in sorted(per_country):
            if country == "?":
                continue
            v = b.var(0.0, 0.0, 1.0, True)
            v_cols.append(v)
            coeffs = {col: 1.0 for col in per_country[country]}
            coeffs[v] = -float(c.units)
            b.row(coeffs, -math.inf, 0.0)
            used = {col: -1.0 for col in per_country[country]}
            used[v] = 1.0
            b.row(used, -math.inf, 0.0)
        coeffs = {v: 1.0 for v in v_cols}
        if callable(slack):
            coeffs[slack("spread", f"{name}: countries", "countries")] = 1.0
        b.row(coeffs, float(rule.min_countries), math.inf)


_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kInterrupt: "interrupted",
}


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
    """Solve the fleet; if infeasible, diagnose with penalised slacks."""
    started = time.perf_counter()
    b, rows = build(spec, snapshot, cands, dues, relax=False)
    h = b.solve(time_limit, gap, seed)
    status = _STATUS.get(h.getModelStatus(), str(h.getModelStatus()))
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    report = SolverReport(
        solver="highs",
        status=status if has_solution or status == "infeasible" else f"{status} (no solution)",
        objective=_dec(info.objective_function_value) if has_solution else None,
        bound=_dec(info.mip_dual_bound) if has_solution else None,
        gap=_gap(info.mip_gap) if has_solution else None,
        variables=len(b.cost),
        constraints=len(b.row_lower),
        integer_variables=sum(b.integer),
        seconds=time.perf_counter() - started,
    )
    if has_solution:
        return MilpResult(_read(h, rows, cands), report)
    if status != "infeasible":
        return MilpResult(None, report)
    rb, rrows = build(spec, snapshot, cands, dues, relax=True)
    rh = rb.solve(time_limit, gap, seed)
    diagnosis = _diagnose(rh, rrows, cands)
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    return MilpResult(None, report, diagnosis)


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def _gap(value: float) -> float:
    return round(max(0.0, value), 6) if math.isfinite(value) else math.inf


def _read(h: highspy.Highs, rows: _Rows, cands: Sequence[Candidates]) -> tuple[Assignment, ...]:
    values = h.getSolution().col_value
    out = []
    for (wi, oi), col in rows.y.items():
        units = round(values[col])
        if units > 0:
            c = cands[wi]
            out.append(Assignment(c.workload.name, c.options[oi], units))
    return tuple(out)


def _diagnose(h: highspy.Highs, rows: _Rows, cands: Sequence[Candidates]) -> tuple[Violation, ...]:
    if h.getInfo().primal_solution_status != 2:
        return (
            Violation(
                "unknown",
                "fleet",
                Decimal(0),
                "the relaxed model found no solution either within the time limit",
            ),
        )
    values = h.getSolution().col_value
    found: list[Violation] = []
    y = {key: round(values[col]) for key, col in rows.y.items()}
    for col, family, subject, unit in rows.slacks:
        excess = values[col]
        if excess <= 1e-6:
            continue
        amount = Decimal(repr(round(excess, 4))).normalize()
        if family == "capacity":
            limit, members = rows.groups[subject]
            users = sorted({cands[wi].workload.name for wi, oi in members if y[(wi, oi)]})
            classes = sorted({cands[wi].workload.data.class_ for wi, oi in members if y[(wi, oi)]})
            model, where = subject.split(" at ", 1)
            found.append(
                Violation(
                    family,
                    subject,
                    amount,
                    f"{', '.join(classes)} workloads need {limit + amount:f} {model} at {where} "
                    f"but the capacity is {limit} (short by {amount:f} {unit}); placed there: "
                    f"{', '.join(users[:8])}{' ...' if len(users) > 8 else ''}",
                )
            )
        elif family == "spread":
            found.append(
                Violation(
                    family,
                    subject,
                    amount,
                    f"{subject}: {amount:f} {unit} short of the spread rule "
                    "(too few eligible pools after policy, constraints and capacity)",
                )
            )
        else:
            found.append(
                Violation(
                    family,
                    subject,
                    amount,
                    f"{subject} would exceed its concentration cap ({unit}); no placement of the "
                    "other workloads keeps it under",
                )
            )
    if not found:
        found.append(
            Violation(
                "unknown",
                "fleet",
                Decimal(0),
                "infeasible, but no single family of rules explains it",
            )
        )
    return tuple(found)
