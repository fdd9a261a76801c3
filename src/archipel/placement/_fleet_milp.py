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
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import highspy
import numpy as np

from archipel.core import CatalogSnapshot, FleetSpec, SolverError, resolve_accelerator
from archipel.placement._fleet_model import (
    Assignment,
    Candidates,
    Option,
    SolverReport,
    Violation,
    ViolationFamily,
    account,
)

# How far two figures of one solution may differ (column rounding, float sums)
# and still be the same figure: a cent, or a millionth of the amount.
_ABS_TOL = 0.01
_REL_TOL = 1e-6


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= _ABS_TOL + _REL_TOL * max(abs(a), abs(b))


class _QuietHighs(highspy.Highs):
    """A HiGHS instance that prints nothing, not even the banner of its first call.

    ``highspy.Highs()`` makes a logging call (``enableCallbacks``) inside its
    constructor, before any option can be set, and HiGHS writes its banner to
    the process's standard output there. Logging is switched off first.
    """

    def enableCallbacks(self) -> None:  # noqa: N802 (highspy's name)
        self.setOptionValue("output_flag", False)
        self.setOptionValue("log_to_console", False)
        super().enableCallbacks()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _Solution:
    """Column values that passed the check, and their objective recomputed from them."""

    values: list[float]
    objective: float


class _UntrustedError(Exception):
    """A solution that fails the check; the message says how."""


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

    def solve(
        self,
        time_limit: float,
        gap: float,
        seed: int,
        integral: bool = True,
        fixed: Mapping[int, float] | None = None,
        start: Sequence[float] | None = None,
    ) -> highspy.Highs:
        """Run HiGHS: the MIP, or its LP relaxation (``integral=False``).

        ``fixed`` pins columns to values; ``start`` offers a feasible solution.
        """
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = len(self.cost)
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.asarray(self.cost, dtype=np.float64)
        lower = np.asarray(self.lower, dtype=np.float64)
        upper = np.asarray([inf if math.isinf(u) else u for u in self.upper], dtype=np.float64)
        for col, value in (fixed or {}).items():
            lower[col] = upper[col] = value
        lp.col_lower_ = lower
        lp.col_upper_ = upper
        lp.row_lower_ = np.asarray([-inf if math.isinf(v) else v for v in self.row_lower])
        lp.row_upper_ = np.asarray([inf if math.isinf(v) else v for v in self.row_upper])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = lp.num_col_
        lp.a_matrix_.num_row_ = lp.num_row_
        lp.a_matrix_.start_ = np.asarray(self.starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.asarray(self.index, dtype=np.int32)
        lp.a_matrix_.value_ = np.asarray(self.value, dtype=np.float64)
        if integral:
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.integer
            ]
        h = _QuietHighs()  # type: ignore[no-untyped-call]
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", float(gap))
        h.setOptionValue("random_seed", int(seed))
        h.setOptionValue("threads", 1)
        h.setOptionValue("mip_heuristic_effort", 0.3)
        h.passModel(lp)
        if start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = list(start)
            h.setSolution(solution)
        h.run()
        return h

    def checked(
        self, h: highspy.Highs, integral: bool = True, fixed: Mapping[int, float] | None = None
    ) -> _Solution | None:
        """The solution ``h`` holds, checked against this model; None if it holds none.

        Raises :class:`_UntrustedError` when the columns break a bound, an integrality
        or a row, or when their objective is not the one the solver reports.
        """
        if h.getInfo().primal_solution_status != 2:
            return None
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        if len(x) != len(self.cost):
            raise _UntrustedError(f"{len(x)} column values for {len(self.cost)} columns")
        lower = np.asarray(self.lower, dtype=np.float64)
        upper = np.asarray(self.upper, dtype=np.float64)
        for col, value in (fixed or {}).items():
            lower[col] = upper[col] = value
        slack = 1e-6 * np.maximum(1.0, np.abs(x))
        if np.any(x < lower - slack) or np.any(x > upper + slack):
            raise _UntrustedError("a column is outside its bounds")
        if integral:
            ints = np.asarray(self.integer, dtype=np.bool_)
            if np.any(np.abs(x[ints] - np.round(x[ints])) > 1e-6):
                raise _UntrustedError("an integer column is fractional")
        starts = np.asarray(self.starts, dtype=np.int64)
        row_of = np.repeat(np.arange(len(self.row_lower)), np.diff(starts))
        terms = np.asarray(self.value, dtype=np.float64) * x[np.asarray(self.index, dtype=np.int64)]
        activity = np.bincount(row_of, weights=terms, minlength=len(self.row_lower))
        scale = np.bincount(row_of, weights=np.abs(terms), minlength=len(self.row_lower))
        tol = 1e-6 * np.maximum(1.0, scale)
        if np.any(activity < np.asarray(self.row_lower) - tol) or np.any(
            activity > np.asarray(self.row_upper) + tol
        ):
            raise _UntrustedError("a constraint row is violated")
        objective = float(np.dot(np.asarray(self.cost, dtype=np.float64), x))
        reported = h.getInfo().objective_function_value
        if not _agree(objective, reported):
            raise _UntrustedError(
                f"its columns cost {objective:,.2f} but its objective is {reported:,.2f}"
            )
        return _Solution(x.tolist(), objective)


@dataclass
class _Rows:
    """Which rows and slack columns mean what, to read a solution back."""

    y: dict[tuple[int, int], int] = field(default_factory=dict)  # (workload, option) -> col
    slacks: list[tuple[int, ViolationFamily, str, str]] = field(
        default_factory=list
    )  # col, family, subject, unit
    groups: dict[str, tuple[int, list[tuple[int, int]]]] = field(default_factory=dict)  # capacity
    owner: dict[int, int] = field(default_factory=dict)  # spread slack column -> workload


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

    def slack(family: ViolationFamily, subject: str, unit: str, weight: float = 1.0) -> int:
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
            coeffs[slack(ViolationFamily.CAPACITY, name, "GPUs")] = -1.0
        b.row(coeffs, -math.inf, float(cap))
    # Per-provider totals are variables of their own, so each y appears in one
    # row per measure instead of one row per provider (the rows stay sparse).
    conc = spec.concentration
    spend_of = _totals(
        b,
        cands,
        rows,
        lambda o: float(o.cost),
        set(dues) | (set(by_provider) if conc and conc.measure == "spend" else set()),
    )
    if conc is not None:
        if conc.measure == "spend":
            measure = spend_of
        else:
            measure = _totals(b, cands, rows, lambda o: float(o.gpu_hours), set(by_provider))
        total = b.var(0.0, 0.0, math.inf, False)
        b.row({**{col: 1.0 for col in measure.values()}, total: -1.0}, 0.0, 0.0)
        for provider in sorted(measure):
            share = conc.share_for(provider)
            if share >= 1:
                continue
            coeffs = {measure[provider]: 1.0, total: -share}
            if relax:
                coeffs[slack(ViolationFamily.CONCENTRATION, provider, conc.measure, 1e-3)] = -1.0
            b.row(coeffs, -math.inf, 0.0)
    for provider in sorted(dues):
        shortfall = b.var(1.0, 0.0, math.inf, False)
        b.row({spend_of[provider]: 1.0, shortfall: 1.0}, float(dues[provider]), math.inf)
    return b, rows


def _totals(
    b: _Builder,
    cands: Sequence[Candidates],
    rows: _Rows,
    unit: Callable[[Option], float],
    providers: set[str],
) -> dict[str, int]:
    """A variable per provider equal to the sum of ``unit`` over its placed units."""
    coeffs: dict[str, dict[int, float]] = {p: {} for p in providers}
    for wi, c in enumerate(cands):
        for oi, o in enumerate(c.options):
            if o.provider in coeffs:
                coeffs[o.provider][rows.y[(wi, oi)]] = unit(o)
    out = {}
    for provider in sorted(providers):
        var = b.var(0.0, 0.0, math.inf, False)
        b.row({**coeffs[provider], var: -1.0}, 0.0, 0.0)
        out[provider] = var
    return out


def _spread(
    b: _Builder, rows: _Rows, spec: FleetSpec, c: Candidates, wi: int, slack: object
) -> None:
    rule = spec.spread_of(c.workload)
    cap = rule.provider_cap(c.units)
    per_provider: dict[str, list[int]] = defaultdict(list)
    per_country: dict[str, list[int]] = defaultdict(list)
    for oi, o in enumerate(c.options):
        per_provider[o.provider].append(rows.y[(wi, oi)])
        per_country[o.country or "?"].append(rows.y[(wi, oi)])
    name = c.workload.name
    first_slack = len(rows.slacks)
    if rule.min_providers > 1 or cap < c.units:
        z_cols = []
        for provider in sorted(per_provider):
            z = b.var(0.0, 0.0, 1.0, True)
            z_cols.append(z)
            coeffs = {col: 1.0 for col in per_provider[provider]}
            coeffs[z] = -float(cap)
            if callable(slack):
                coeffs[
                    slack(ViolationFamily.SPREAD, f"{name}: share at {provider}", "replicas")
                ] = -1.0
            b.row(coeffs, -math.inf, 0.0)  # units at p only if p is counted (and then <= cap)
            used = {col: -1.0 for col in per_provider[provider]}
            used[z] = 1.0
            b.row(used, -math.inf, 0.0)  # p counts towards min_providers only if it has a unit
        coeffs = {z: 1.0 for z in z_cols}
        if callable(slack):
            coeffs[slack(ViolationFamily.SPREAD, f"{name}: providers", "providers")] = 1.0
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
            coeffs[slack(ViolationFamily.SPREAD, f"{name}: countries", "countries")] = 1.0
        b.row(coeffs, float(rule.min_countries), math.inf)
    for col, *_ in rows.slacks[first_slack:]:
        rows.owner[col] = wi


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
    deadline = started + time_limit
    b, rows = build(spec, snapshot, cands, dues, relax=False)
    shape = dict(
        variables=len(b.cost), constraints=len(b.row_lower), integer_variables=sum(b.integer)
    )
    relaxed = b.solve(time_limit, gap, seed, integral=False)

    def diagnose() -> MilpResult:
        rb, rrows = build(spec, snapshot, cands, dues, relax=True)
        rh = rb.solve(max(1.0, deadline - time.perf_counter()), gap, seed)
        _trusted(rb, rh, "the relaxed model")
        report = SolverReport(
            "highs", "infeasible", None, None, None, **shape, seconds=time.perf_counter() - started
        )
        return MilpResult(None, report, _diagnose(rh, rrows, cands, spec))

    if relaxed.getModelStatus() in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return diagnose()
    lp = _trusted(b, relaxed, "the LP relaxation", integral=False)
    solved = relaxed.getModelStatus() == highspy.HighsModelStatus.kOptimal
    bound = lp.objective if lp is not None and solved else -math.inf  # a bound only if optimal
    fixed = {}
    for wi in range(len(cands)):
        cols = [rows.y[(wi, oi)] for oi in range(len(cands[wi].options))]
        if lp is not None and all(abs(lp.values[c] - round(lp.values[c])) < 1e-9 for c in cols):
            fixed.update({c: float(round(lp.values[c])) for c in cols})
    small = b.solve(max(0.1, deadline - time.perf_counter()), gap, seed, fixed=fixed)
    try:
        best = b.checked(small, fixed=fixed)
    except _UntrustedError:
        best = None  # no incumbent: the full MIP below runs cold
    status = "optimal"
    if best is None or _rel_gap(best.objective, bound) > gap:
        start = best.values if best is not None else None
        full = b.solve(max(0.1, deadline - time.perf_counter()), gap, seed, start=start)
        try:
            found = b.checked(full)
        except _UntrustedError:
            if start is None:
                raise
            full = b.solve(max(0.1, deadline - time.perf_counter()), gap, seed)  # cold
            found = _trusted(b, full, "the MIP, solved again without a warm start")
        info = full.getInfo()
        bound = max(bound, info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else bound
        if found is not None and (best is None or found.objective < best.objective):
            best = found
        status = _STATUS.get(full.getModelStatus(), str(full.getModelStatus()))
    if best is None and status == "infeasible":  # the LP fits, no integer plan does
        return diagnose()
    if best is None:
        report = SolverReport(
            "highs",
            f"{status} (no solution)",
            None,
            _dec(bound) if math.isfinite(bound) else None,
            None,
            **shape,
            seconds=time.perf_counter() - started,
        )
        return MilpResult(None, report)
    assignments = _read(best.values, rows, cands)
    exact = account(assignments, dues).total
    if float(exact) > best.objective and not _agree(float(exact), best.objective):
        raise SolverError(
            f"the fleet plan read back from the solver costs {exact:,.2f}, but the solver's "
            f"columns cost {best.objective:,.2f}; no plan is given"
        )
    if math.isfinite(bound) and float(exact) < bound and not _agree(float(exact), bound):
        raise SolverError(
            f"the fleet plan read back from the solver costs {exact:,.2f}, below the bound "
            f"{bound:,.2f} the solver claims to have proved; no plan is given"
        )
    rel = _rel_gap(float(exact), bound)
    report = SolverReport(
        solver="highs",
        status="optimal" if rel <= gap else status,
        objective=exact,
        bound=_dec(bound) if math.isfinite(bound) else None,
        gap=_gap(rel),
        **shape,
        seconds=time.perf_counter() - started,
    )
    return MilpResult(assignments, report)


def _trusted(b: _Builder, h: highspy.Highs, what: str, integral: bool = True) -> _Solution | None:
    """``b.checked(h)``, with a failed check turned into a :class:`SolverError`."""
    try:
        return b.checked(h, integral=integral)
    except _UntrustedError as why:
        raise SolverError(
            f"HiGHS {highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}."
            f"{highspy.HIGHS_VERSION_PATCH} returned a solution of {what} that fails its "
            f"check ({why}); no plan is given"
        ) from None


def _rel_gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(abs(objective), 1e-9)


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def _gap(value: float) -> float | None:
    """The gap as reported: None without a bound (JSON has no infinity)."""
    return round(max(0.0, value), 6) if math.isfinite(value) else None


def _spread_text(spec: FleetSpec, c: Candidates) -> str:
    rule = spec.spread_of(c.workload)
    cap = rule.provider_cap(c.units)
    text = f"spread wants at least {rule.min_providers} providers, at most {cap} replicas each"
    if rule.min_countries > 1:
        text += f", in at least {rule.min_countries} countries"
    return text


def _read(
    values: Sequence[float], rows: _Rows, cands: Sequence[Candidates]
) -> tuple[Assignment, ...]:
    out = []
    for (wi, oi), col in rows.y.items():
        units = round(values[col])
        if units > 0:
            c = cands[wi]
            out.append(Assignment(c.workload.name, c.options[oi], units))
    return tuple(out)


def _diagnose(
    h: highspy.Highs, rows: _Rows, cands: Sequence[Candidates], spec: FleetSpec
) -> tuple[Violation, ...]:
    if h.getInfo().primal_solution_status != 2:
        return (
            Violation(
                ViolationFamily.UNKNOWN,
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
        if family is ViolationFamily.CAPACITY:
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
        elif family is ViolationFamily.SPREAD:
            c = cands[rows.owner[col]]
            rule_text = _spread_text(spec, c)
            eligible = sorted({o.provider for o in c.options})
            found.append(
                Violation(
                    family,
                    subject,
                    amount,
                    f"{c.workload.name} ({c.workload.data.class_}, {c.units} replicas): "
                    f"{rule_text}, "
                    f"but only {len(eligible)} provider{'s' if len(eligible) != 1 else ''} "
                    f"({', '.join(eligible)}) can host it under its data class and constraints "
                    f"(short by {amount:f} {unit})",
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
                ViolationFamily.UNKNOWN,
                "fleet",
                Decimal(0),
                "infeasible, but no single family of rules explains it",
            )
        )
    return tuple(found)
