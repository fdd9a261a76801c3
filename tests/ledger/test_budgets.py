"""Budgets: the current period's spend of a tenant or project, its run-rate forecast, alerts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from tests.ledger.frames import frame

from archipel.core import parse_finops
from archipel.ledger import budget_alerts, budget_status
from archipel.ledger._budgets import period_of

RATES = {"USD": Decimal(1), "EUR": Decimal("1.25")}

ROWS = [
    {"start": "2026-06-01T00:00:00", "cost": "100", "tenant": "radiology", "currency": "EUR"},
    {"start": "2026-06-05T00:00:00", "cost": "175", "tenant": "radiology", "currency": "USD"},
    {"start": "2026-06-10T23:00:00", "cost": "0", "tenant": "radiology"},
    {"start": "2026-06-11T00:00:00", "cost": "999", "tenant": "radiology"},  # today: not yet
    {"start": "2026-05-31T23:59:59", "cost": "999", "tenant": "radiology"},  # last month
    {"start": "2026-06-02T00:00:00", "cost": "999", "tenant": "marketing"},
    {"start": "2026-04-02T00:00:00", "cost": "60", "project": "frontier", "tenant": "x"},
    {"start": "2026-06-03T00:00:00", "cost": "40", "project": "frontier", "tenant": "y"},
]
TODAY = date(2026, 6, 11)  # 10 days of June elapsed


def statuses(*budgets: dict[str, Any]) -> Any:
    spec = parse_finops({"budgets": list(budgets)})
    return budget_status(frame(*ROWS), spec, rates=RATES, today=TODAY)


@pytest.mark.parametrize(
    ("kind", "today", "start", "end"),
    [
        ("month", date(2026, 6, 11), date(2026, 6, 1), date(2026, 7, 1)),
        ("month", date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
        ("quarter", date(2026, 6, 11), date(2026, 4, 1), date(2026, 7, 1)),
        ("quarter", date(2026, 10, 1), date(2026, 10, 1), date(2027, 1, 1)),
        ("year", date(2026, 6, 11), date(2026, 1, 1), date(2027, 1, 1)),
    ],
)
def test_calendar_periods(kind: str, today: date, start: date, end: date) -> None:
    p = period_of(kind, today)
    assert (p.start, p.end) == (start, end)


def test_a_tenants_month_converted_with_its_run_rate() -> None:
    (s,) = statuses({"name": "r", "tenant": "radiology", "amount": 1000, "currency": "USD"})
    # 100 EUR = 125 USD, + 175 USD: 300 in 10 days; 30 days at that rate: 900
    assert s.spent == Decimal(300)
    assert s.forecast == Decimal(900)
    assert s.ratio == Decimal("0.3")


def test_a_projects_quarter() -> None:
    (s,) = statuses(
        {"name": "f", "project": "frontier", "amount": 500, "currency": "EUR", "period": "quarter"}
    )
    # 60 + 40 USD = 80 EUR in the 71 days from 1 April; the quarter has 91
    assert s.spent == Decimal(80)
    assert s.forecast == Decimal("102.535211268")  # 80 * 91 / 71, rounded to the nano-unit


def test_no_forecast_on_the_first_day() -> None:
    spec = parse_finops({"budgets": [{"name": "r", "tenant": "radiology", "amount": 10}]})
    (s,) = budget_status(frame(*ROWS), spec, rates=RATES, today=date(2026, 6, 1))
    assert s.spent == 0 and s.forecast is None
    assert budget_alerts([s]) == []


@pytest.mark.parametrize(
    ("amount", "alert_at", "expected"),
    [
        pytest.param(2000, [0.8, 1.0], [], id="well under"),
        pytest.param(1000, [0.8, 1.0], [("warning", "forecast", "80%")], id="forecast crosses 80%"),
        pytest.param(
            850, [0.8, 1.0], [("warning", "forecast", "100%")], id="forecast crosses 100%"
        ),
        pytest.param(
            350,
            [0.8, 1.0],
            [("warning", "spent", "80%"), ("warning", "forecast", "100%")],
            id="spend crossed 80%",
        ),
        pytest.param(300, [0.8, 1.0], [("critical", "spent", "100%")], id="spend reached 100%"),
        pytest.param(200, [0.5, 1.2], [("critical", "spent", "120%")], id="past 120%"),
    ],
)
def test_budget_alerts(amount: int, alert_at: list[float], expected: list[tuple[str, ...]]) -> None:
    budget = {"name": "r", "tenant": "radiology", "amount": amount, "alert_at": alert_at}
    alerts = budget_alerts(statuses(budget))
    found = [
        (a.severity, a.message.split()[0], a.message.split("alert at ")[1].rstrip(")"))
        for a in alerts
    ]
    assert found == expected
    assert all(a.kind == "budget" and a.subject == "r" for a in alerts)
