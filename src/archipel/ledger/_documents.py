"""The burn-downs, budgets and alerts as JSON documents: one shape for the CLI and the API.

Amounts are exact decimal strings (never JSON numbers), as everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from archipel.core import FinOpsSpec
from archipel.ledger._alerts import Alert, budget_alerts, commitment_alerts
from archipel.ledger._budgets import BudgetStatus, budget_status
from archipel.ledger._commitments import Burn, Forecast, burn_down, next_month
from archipel.ledger._forecast import MIN_HISTORY, Score, backtest
from archipel.ledger._plan import FleetPlanSpend, Planned


def amount(value: Decimal) -> str:
    """An amount as exact text, without trailing zeros or an exponent."""
    text = format(value.normalize(), "f")
    return text


def ratio(value: Decimal) -> str:
    """A share as text with four decimals (a display figure, not money)."""
    return format(value.quantize(Decimal("0.0001")), "f")


def forecast_document(f: Forecast, *, path: bool) -> dict[str, Any]:
    mean, low, high = f.at_end
    doc: dict[str, Any] = {
        "level": f.level,
        "method": f.method,
        "at_end": {"mean": amount(mean), "low": amount(low), "high": amount(high)},
    }
    if path:
        doc["months"] = [
            {"month": m.isoformat(), "mean": amount(a), "low": amount(b), "high": amount(c)}
            for m, a, b, c in zip(f.months, f.mean, f.low, f.high, strict=True)
        ]
    return doc


def planned_document(p: Planned, *, path: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"plan": p.plan, "per_day": amount(p.daily), "at_end": amount(p.at_end)}
    if path:
        doc["months"] = [
            {"month": m.isoformat(), "position": amount(v)}
            for m, v in zip(p.months, p.position, strict=True)
        ]
    return doc


def burn_document(b: Burn, *, path: bool = False) -> dict[str, Any]:
    """One commitment's burn-down; ``path`` adds the month-by-month series."""
    c = b.commitment
    mean, low, high = b.at_end
    doc: dict[str, Any] = {
        "name": c.label,
        "provider": c.provider,
        "currency": b.currency,
        "amount": amount(c.amount),
        "period": {"start": c.period.start.isoformat(), "end": c.period.end.isoformat()},
        "discount": amount(c.discount),
        "today": b.today.isoformat(),
        "spent": amount(b.to_date),
        "burned": ratio(b.ratio),
        "at_end": {"mean": amount(mean), "low": amount(low), "high": amount(high)},
        "forecast": None if b.forecast is None else forecast_document(b.forecast, path=path),
        "planned": None if b.planned is None else planned_document(b.planned, path=path),
        "ramp": [
            {
                "year": y.year,
                "start": y.period.start.isoformat(),
                "end": y.period.end.isoformat(),
                "minimum": None if y.minimum is None else amount(y.minimum),
                "spent": amount(y.spent),
                "expected": None if y.expected is None else amount(y.expected),
                "status": y.status,
            }
            for y in b.ramp
        ],
    }
    if path:
        doc["months"] = [
            {"month": m.isoformat(), "spent": amount(s)}
            for m, s in zip(b.months, b.spent, strict=True)
        ]
        history = whole_months(b)
        doc["backtest"] = (
            [score_document(s) for s in backtest(history, level=b.forecast.level)]
            if b.forecast is not None and len(history) > MIN_HISTORY
            else None
        )
    return doc


def whole_months(b: Burn) -> list[Decimal]:
    """The spend of each whole month of the term before today (not cumulative)."""
    until = min(max(b.today, b.commitment.period.start), b.commitment.period.end)
    out: list[Decimal] = []
    before = Decimal(0)
    for month, spent in zip(b.months, b.spent, strict=True):
        if next_month(month) > until:
            break
        out.append(spent - before)
        before = spent
    return out


def score_document(s: Score) -> dict[str, Any]:
    return {
        "method": s.method,
        "origins": s.origins,
        "mae": amount(s.mae),
        "mape": amount(s.mape),
        "coverage": None if s.coverage is None else amount(s.coverage),
    }


def budget_document(s: BudgetStatus) -> dict[str, Any]:
    b = s.budget
    column, owner = b.owner
    return {
        "name": b.name,
        column: owner,
        "currency": b.currency,
        "amount": amount(b.amount),
        "period": b.period,
        "start": s.period.start.isoformat(),
        "end": s.period.end.isoformat(),
        "today": s.today.isoformat(),
        "spent": amount(s.spent),
        "used": ratio(s.ratio),
        "forecast": None if s.forecast is None else amount(s.forecast),
        "alert_at": [amount(f) for f in b.alert_at],
    }


def alert_document(a: Alert) -> dict[str, str]:
    return {"kind": a.kind, "subject": a.subject, "severity": a.severity, "message": a.message}


def finops_report(
    spec: FinOpsSpec,
    connection: duckdb.DuckDBPyConnection,
    rates: Mapping[str, Decimal],
    today: date,
    *,
    level: float = 0.8,
    path: bool = False,
    plan: FleetPlanSpend | None = None,
) -> dict[str, Any]:
    """Commitments, budgets and alerts as one document (what the CLI and the API answer);
    a fleet ``plan`` adds each commitment's position if spend follows it."""
    burns = burn_down(connection, spec, rates=rates, today=today, level=level, plan=plan)
    budgets = budget_status(connection, spec, rates=rates, today=today)
    alerts = commitment_alerts(burns, spec.alerts) + budget_alerts(budgets)
    return {
        "today": today.isoformat(),
        "commitments": [burn_document(b, path=path) for b in burns],
        "budgets": [budget_document(s) for s in budgets],
        "alerts": [alert_document(a) for a in alerts],
    }
