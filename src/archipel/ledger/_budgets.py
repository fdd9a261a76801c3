"""Budgets: what a tenant or a project spent in the current month, quarter or year.

The spend is that of the current entries of the budget's tenant (or project)
that started in the calendar period ``today`` is in, before ``today`` (the
day in progress is not counted), converted into the budget's currency at the
catalog's rates and rounded half-even to the nano-unit once. The forecast at
the period's end is the run rate: the spend so far over the days elapsed,
times the days of the period (none on its first day, when nothing elapsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

import duckdb

from archipel.core import Budget, FinOpsSpec, Period
from archipel.ledger._commitments import in_currency, next_month
from archipel.ledger._forecast import to_decimal


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget's current period: spent to date and forecast at its end, in ``currency``."""

    budget: Budget
    period: Period
    spent: Decimal
    forecast: Decimal | None
    today: date

    @property
    def currency(self) -> str:
        return self.budget.currency

    @property
    def ratio(self) -> Decimal:
        return self.spent / self.budget.amount


def period_of(kind: str, today: date) -> Period:
    """The calendar month, quarter or year that ``today`` is in."""
    if kind == "month":
        start = today.replace(day=1)
        return Period(start=start, end=next_month(start))
    if kind == "quarter":
        start = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
        end = start
        for _ in range(3):
            end = next_month(end)
        return Period(start=start, end=end)
    if kind == "year":
        return Period(start=date(today.year, 1, 1), end=date(today.year + 1, 1, 1))
    raise ValueError(f"unknown budget period {kind!r}")


def budget_status(
    connection: duckdb.DuckDBPyConnection,
    spec: FinOpsSpec,
    *,
    rates: Mapping[str, Decimal],
    today: date,
) -> list[BudgetStatus]:
    """Each budget of ``spec`` in its current period."""
    return [status_of(connection, b, rates, today) for b in spec.budgets]


def status_of(
    connection: duckdb.DuckDBPyConnection, b: Budget, rates: Mapping[str, Decimal], today: date
) -> BudgetStatus:
    """One budget in its current period (see the module's text)."""
    period = period_of(b.period, today)
    column, owner = b.owner
    rows = connection.execute(
        f'SELECT currency, sum(cost) FROM entries WHERE "{column}" = ? AND "start" >= ? '
        'AND "start" < ? AND cost IS NOT NULL AND currency IS NOT NULL GROUP BY 1',
        [owner, period.start, today],
    ).fetchall()
    spent = in_currency(
        [(code, Decimal(amount)) for code, amount in rows], b.currency, rates, f"budget {b.name}"
    )
    elapsed = (today - period.start).days
    forecast = None
    if elapsed > 0:
        total = (period.end - period.start).days
        forecast = to_decimal(Fraction(spent) * total / elapsed)
    return BudgetStatus(b, period, spent, forecast, today)
