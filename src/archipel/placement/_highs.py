"""A sparse mixed-integer program, solved with HiGHS, and every answer it gives checked.

:class:`_Builder` collects columns (cost, bounds, integrality) and rows (sparse
coefficients and bounds), hands them to HiGHS and checks what comes back:
nothing a solver returns is taken on trust. A solution read back must keep
every bound, integrality and row of the model that was built, and its
objective, recomputed from its columns, must be the one the solver reports;
otherwise it is an :class:`_UntrustedError` (or, through :func:`trusted`, a
:class:`SolverError`). This module knows nothing of fleets: what the columns
and rows mean is :mod:`archipel.placement._fleet_milp_model`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt

from archipel.core import SolverError

# How far two figures of one solution may differ (column rounding, float sums)
# and still be the same figure: a cent, or a millionth of the amount.
_ABS_TOL = 0.01
_REL_TOL = 1e-6

_Floats = npt.NDArray[np.float64]


def agree(a: float, b: float) -> bool:
    """Whether ``a`` and ``b`` are the same figure, up to rounding."""
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
class Solution:
    """Column values that passed the check, and their objective recomputed from them."""

    values: list[float]
    objective: float


class _UntrustedError(Exception):
    """A solution that fails the check; the message says how."""


@dataclass
class _Builder:
    """The model as HiGHS takes it: columns, and rows stored row-wise (sparse)."""

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
        """A new column; its index."""
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, coeffs: Mapping[int, float], lower: float, upper: float) -> int:
        """A new row, ``lower <= sum(coeff * column) <= upper``; its index."""
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
        h = _QuietHighs()  # type: ignore[no-untyped-call]
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", float(gap))
        h.setOptionValue("random_seed", int(seed))
        h.setOptionValue("threads", 1)
        h.setOptionValue("mip_heuristic_effort", 0.3)
        h.passModel(self._lp(integral, fixed or {}))
        if start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = list(start)
            h.setSolution(solution)
        h.run()
        return h

    def _lp(self, integral: bool, fixed: Mapping[int, float]) -> highspy.HighsLp:
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = len(self.cost)
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.asarray(self.cost, dtype=np.float64)
        lower, upper = self._bounds(fixed)
        lp.col_lower_ = lower
        lp.col_upper_ = np.where(np.isinf(upper), inf, upper)
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
        return lp

    def _bounds(self, fixed: Mapping[int, float]) -> tuple[_Floats, _Floats]:
        """The columns' bounds, with the ``fixed`` ones pinned to their values."""
        lower = np.asarray(self.lower, dtype=np.float64)
        upper = np.asarray(self.upper, dtype=np.float64)
        for col, value in fixed.items():
            lower[col] = upper[col] = value
        return lower, upper

    def checked(
        self, h: highspy.Highs, integral: bool = True, fixed: Mapping[int, float] | None = None
    ) -> Solution | None:
        """The solution ``h`` holds, checked against this model; None if it holds none.

        Raises :class:`_UntrustedError` when the columns break a bound, an integrality
        or a row, or when their objective is not the one the solver reports.
        """
        if h.getInfo().primal_solution_status != 2:
            return None
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        if len(x) != len(self.cost):
            raise _UntrustedError(f"{len(x)} column values for {len(self.cost)} columns")
        self._check_columns(x, integral, fixed or {})
        self._check_rows(x)
        objective = float(np.dot(np.asarray(self.cost, dtype=np.float64), x))
        reported = h.getInfo().objective_function_value
        if not agree(objective, reported):
            raise _UntrustedError(
                f"its columns cost {objective:,.2f} but its objective is {reported:,.2f}"
            )
        return Solution(x.tolist(), objective)

    def _check_columns(self, x: _Floats, integral: bool, fixed: Mapping[int, float]) -> None:
        lower, upper = self._bounds(fixed)
        slack = 1e-6 * np.maximum(1.0, np.abs(x))
        if np.any(x < lower - slack) or np.any(x > upper + slack):
            raise _UntrustedError("a column is outside its bounds")
        if integral:
            ints = np.asarray(self.integer, dtype=np.bool_)
            if np.any(np.abs(x[ints] - np.round(x[ints])) > 1e-6):
                raise _UntrustedError("an integer column is fractional")

    def _check_rows(self, x: _Floats) -> None:
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


def trusted(b: _Builder, h: highspy.Highs, what: str, integral: bool = True) -> Solution | None:
    """``b.checked(h)``, with a failed check turned into a :class:`SolverError`."""
    try:
        return b.checked(h, integral=integral)
    except _UntrustedError as why:
        raise SolverError(
            f"HiGHS {highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}."
            f"{highspy.HIGHS_VERSION_PATCH} returned a solution of {what} that fails its "
            f"check ({why}); no plan is given"
        ) from None
