"""Commitments burned down from the entries: scope, currency, discount, months, ramp, alerts.

Every expected value is worked out by hand from the rows of the test.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ledger.frames import frame

from archipel.core import AlertTolerances, parse_finops
from archipel.ledger import burn_down, commitment_alerts

RATES = {"USD": Decimal(1), "EUR": Decimal("1.25")}  # 1 EUR = 1.25 USD; 1 USD = 0.8 EUR
YEAR_2026 = {"start": "2026-01-01", "end": "2027-01-01"}


def spec(**commitment: Any) -> Any:
    doc: dict[str, Any] = {"provider": "aws", "amount": 10_000, "period": YEAR_2026}
    doc.update(commitment)
    return parse_finops({"commitments": [doc]})


def burn(rows: list[dict[str, Any]], today: date, **commitment: Any) -> Any:
    return burn_down(frame(*rows), spec(**commitment), rates=RATES, today=today)[0]


# one row of each kind, each with a cost that says what it is (powers of two: any sum is unique)
MIXED = [
    {"start": "2026-02-01T10:00:00", "cost": "1"},  # aws us-east-1 H100 runs: compute
    {"start": "2026-02-02T10:00:00", "cost": "2", "region": "eu-west-1"},
    {"start": "2026-02-03T10:00:00", "cost": "4", "accelerator": "a100-80gb"},
    {"start": "2026-02-04T10:00:00", "cost": "8", "source": "gateway", "accelerator": None},
    # the rows below are H100 unless they say otherwise
    {"start": "2026-02-05T10:00:00", "cost": "16", "provider": "azure"},
    {  # a FOCUS import carrying tokens: inference
        "start": "2026-02-06T10:00:00",
        "cost": "32",
        "source": "focus",
        "input_tokens": 10,
        "gpu_hours": "0",
    },
    {"start": "2026-02-07T10:00:00", "cost": "64", "source": "focus", "gpu_hours": "2"},
    {"start": "2026-02-08T10:00:00", "cost": None, "currency": None},  # cost nothing
    {"start": "2025-12-31T23:00:00", "cost": "128"},  # before the period
    {"start": "2026-03-01T00:00:00", "cost": "256"},  # on `today`: not counted yet
]


@pytest.mark.parametrize(
    ("burns", "spent"),
    [
        pytest.param({}, 1 + 2 + 4 + 8 + 32 + 64, id="all of the provider"),
        pytest.param({"regions": ["us-east-1"]}, 1 + 4 + 8 + 32 + 64, id="one region"),
        pytest.param({"accelerators": ["h100"]}, 1 + 2 + 32 + 64, id="one family, any case"),
        pytest.param(
            {"accelerators": ["A100-80GB", "H100"]}, 1 + 2 + 4 + 32 + 64, id="two families"
        ),
        pytest.param({"services": ["compute"]}, 1 + 2 + 4 + 64, id="compute"),
        pytest.param({"services": ["inference"]}, 8 + 32, id="inference"),
        pytest.param(
            {"regions": ["eu-west-1"], "services": ["inference"]}, 0, id="scopes intersect"
        ),
    ],
)
def test_scope_decides_what_burns(burns: dict[str, Any], spent: int) -> None:
    b = burn(MIXED, date(2026, 3, 1), burns=burns)
    assert b.to_date == Decimal(spent)


def test_months_are_cumulative_to_today() -> None:
    rows = [
        {"start": "2026-01-05T00:00:00", "cost": "100.25"},
        {"start": "2026-01-31T23:59:59", "cost": "0.75"},
        {"start": "2026-03-14T12:00:00", "cost": "50"},
        {"start": "2026-03-15T00:00:00", "cost": "1000"},  # today
    ]
    b = burn(rows, date(2026, 3, 15))
    assert b.months == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert b.spent == [Decimal(101), Decimal(101), Decimal(151)]
    assert b.target == Decimal(10_000)
    assert b.ratio == Decimal("0.0151")


@pytest.mark.parametrize(
    ("currency", "discount", "rows", "spent"),
    [
        pytest.param("USD", 0, [("EUR", "100")], Decimal(125), id="EUR into USD"),
        pytest.param("EUR", 0, [("USD", "100")], Decimal(80), id="USD into EUR"),
        pytest.param(
            "USD", 0, [("USD", "10"), ("EUR", "0.000000001")], Decimal("10.000000001"), id="nano"
        ),
        pytest.param("USD", 0.15, [("USD", "1000")], Decimal(850), id="net of a 15% discount"),
        pytest.param(
            "EUR", 0.2, [("USD", "100"), ("EUR", "10")], Decimal(72), id="convert, then discount"
        ),
    ],
)
def test_spend_is_converted_and_net(
    currency: str, discount: float, rows: list[tuple[str, str]], spent: Decimal
) -> None:
    entries = [
        {"start": "2026-02-01T00:00:00", "currency": code, "cost": cost} for code, cost in rows
    ]
    b = burn(entries, date(2026, 3, 1), currency=currency, discount=discount)
    assert b.to_date == spent
    assert b.currency == currency


@pytest.mark.parametrize(
    ("source", "spent"),
    [
        pytest.param("runs", Decimal(800), id="a run Archipel priced at list: net of 20%"),
        pytest.param("gateway", Decimal(800), id="a request priced at list: net of 20%"),
        pytest.param("focus:aws", Decimal(1000), id="a provider's billed row: net already"),
        pytest.param("cur", Decimal(1000), id="a CUR row: net already"),
    ],
)
def test_the_discount_is_taken_once(source: str, spent: Decimal) -> None:
    # a provider's bill is already net of the discount its commitment buys: taking it
    # again from an imported row would burn the commitment at 0.8 x 0.8 of the bill
    rows = [{"start": "2026-02-01T00:00:00", "source": source, "cost": "1000"}]
    assert burn(rows, date(2026, 3, 1), discount=0.2).to_date == spent


def test_a_currency_without_a_rate_is_named() -> None:
    from archipel.core import InputError

    with pytest.raises(InputError, match="commitment aws: no exchange rate for GBP"):
        burn([{"start": "2026-02-01T00:00:00", "currency": "GBP", "cost": "1"}], date(2026, 3, 1))


def monthly(*amounts: str, year: int = 2026) -> list[dict[str, Any]]:
    return [
        {"start": f"{year}-{m:02d}-10T00:00:00", "cost": a}
        for m, a in enumerate(amounts, start=1)
        if a != "0"
    ]


def test_a_flat_history_forecasts_the_straight_line() -> None:
    b = burn(monthly(*["100"] * 6), date(2026, 7, 1))
    assert b.forecast is not None
    assert b.forecast.months[0] == date(2026, 7, 1)
    assert b.forecast.mean == [Decimal(600 + 100 * k) for k in range(1, 7)]
    assert b.at_end == (Decimal(1200), Decimal(1200), Decimal(1200))  # no noise: no band


def test_a_linear_history_forecasts_its_trend() -> None:
    # 100, 200, 300 then 400, 500, 600 to come: 600 + 1500
    b = burn(
        monthly("100", "200", "300"),
        date(2026, 4, 1),
        period={"start": "2026-01-01", "end": "2026-07-01"},
    )
    assert b.at_end == (Decimal(2100), Decimal(2100), Decimal(2100))


def test_the_month_in_progress_adds_the_share_still_to_come() -> None:
    rows = [*monthly("100", "100"), {"start": "2026-03-05T00:00:00", "cost": "40"}]
    b = burn(rows, date(2026, 3, 16))
    assert b.forecast is not None
    # 240 to date, plus 16 of March's 31 days at 100 a month: 240 + 1600/31 = 291.6129032258...
    assert b.forecast.mean[0] == Decimal("291.612903226")
    # and 100 for each of April to December
    assert b.forecast.mean[-1] == Decimal("291.612903226") + 900


def test_no_forecast_before_a_whole_month_or_after_the_term() -> None:
    assert burn(monthly("100"), date(2026, 1, 20)).forecast is None
    over = burn(monthly("100", "200"), date(2027, 2, 1))
    assert over.forecast is None
    assert over.at_end == (Decimal(300),) * 3


def test_ramp_years_and_their_alerts() -> None:
    two_years = {"start": "2026-01-01", "end": "2028-01-01"}
    rows = monthly(*["100"] * 12) + monthly("100", "100", "100", year=2027)
    b = burn(rows, date(2027, 4, 1), amount=3000, period=two_years, ramp=[1000, 2000])
    first, second = b.ramp
    assert (first.spent, first.status) == (Decimal(1200), "met")
    # year 2: 300 so far, and 9 more months at 100: 1,200 of a 2,000 minimum
    assert (second.spent, second.expected, second.status) == (
        Decimal(300),
        Decimal(1200),
        "at risk",
    )
    assert b.current_year == second
    alerts = commitment_alerts([b], AlertTolerances())
    assert [(a.kind, a.severity) for a in alerts] == [
        ("shortfall", "critical"),  # 2,400 of 3,000 at term end, and no band to save it
        ("shortfall", "warning"),  # this year's minimum at risk
    ]
    assert "short by 600.00 USD" in alerts[0].message
    assert "contract year 2" in alerts[1].message


def test_a_missed_year_is_an_alert() -> None:
    two_years = {"start": "2026-01-01", "end": "2028-01-01"}
    b = burn(monthly(*["50"] * 12), date(2027, 2, 1), amount=1000, period=two_years, ramp=[900])
    assert b.ramp[0].status == "missed"
    assert b.ramp[1].status == "no minimum"
    messages = [a.message for a in commitment_alerts([b], AlertTolerances())]
    assert any(
        "contract year 1" in m and "600.00 USD of its minimum 900.00 USD" in m for m in messages
    )


@pytest.mark.parametrize(
    ("amount", "tolerances", "kinds"),
    [
        pytest.param(1200, {}, [], id="on target"),
        pytest.param(1250, {}, [], id="short within 5%"),
        pytest.param(1300, {}, ["shortfall"], id="short beyond 5%"),
        pytest.param(1300, {"shortfall": 0.1}, [], id="short within a 10% tolerance"),
        pytest.param(1100, {}, ["overrun"], id="over beyond 5%"),
        pytest.param(1150, {}, [], id="over within 5%"),
    ],
)
def test_shortfall_and_overrun_tolerances(
    amount: int, tolerances: dict[str, float], kinds: list[str]
) -> None:
    b = burn(monthly(*["100"] * 6), date(2026, 7, 1), amount=amount)
    assert b.at_end[0] == Decimal(1200)
    alerts = commitment_alerts([b], AlertTolerances(**tolerances))
    assert [a.kind for a in alerts] == kinds


def test_an_overrun_already_spent_is_critical() -> None:
    b = burn(monthly(*["100"] * 6), date(2026, 7, 1), amount=500)
    (alert,) = commitment_alerts([b], AlertTolerances())
    assert (alert.kind, alert.severity) == ("overrun", "critical")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=12),
            st.decimals(min_value=0, max_value=10**6, places=15, allow_nan=False),
            st.sampled_from(["USD", "EUR"]),
        ),
        min_size=1,
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_spend_is_exact_in_any_order(
    rows: list[tuple[int, Decimal, str]], shuffle: random.Random
) -> None:
    """The burn-down is the exact sum, to the nano-unit, whatever order the entries come in."""
    entries = [
        {"start": f"2026-{m:02d}-02T00:00:00", "cost": str(c), "currency": code, "key": f"k{i}"}
        for i, (m, c, code) in enumerate(rows)
    ]
    expected = sum(((c * (RATES[code]) if code == "EUR" else c) for _, c, code in rows), Decimal(0))
    shuffle.shuffle(entries)
    b = burn(entries, date(2027, 1, 1), amount=10**12)
    # each month is rounded half-even to the nano-unit once: at most half a nano-unit a month
    assert abs(b.to_date - expected) <= Decimal("0.0000000005") * 12
    assert b.to_date == b.to_date.quantize(Decimal("1e-9"))
    assert b.spent == sorted(b.spent)  # cumulative


def test_no_shortfall_before_a_forecast_but_an_overrun_already_spent_is_one() -> None:
    early = burn(monthly("100"), date(2026, 1, 20))  # no whole month yet
    assert early.forecast is None and not early.over
    assert commitment_alerts([early], AlertTolerances()) == []
    spent = burn(monthly("100"), date(2026, 1, 20), amount=50)
    (alert,) = commitment_alerts([spent], AlertTolerances())
    assert (alert.kind, alert.severity) == ("overrun", "critical")
    assert alert.message.startswith("spent 100.00 USD against 50.00 USD")


def test_a_term_that_is_over_is_judged_on_what_was_spent() -> None:
    over = burn(monthly("100", "200"), date(2027, 2, 1), amount=1000)
    assert over.over
    (alert,) = commitment_alerts([over], AlertTolerances())
    assert (alert.kind, alert.severity) == ("shortfall", "critical")
    assert alert.message == "spent 300.00 USD of 1,000.00 USD by 2027-01-01: short by 700.00 USD"


def test_a_period_that_starts_mid_month() -> None:
    """From 16 April: April's 50 is half a month's 100 (15 of its 30 days in the term), so
    the history is flat at 100; nine whole months and half of April 2027 to come: 950."""
    rows = [
        {"start": "2026-04-20T00:00:00", "cost": "50"},
        {"start": "2026-05-10T00:00:00", "cost": "100"},
        {"start": "2026-06-10T00:00:00", "cost": "100"},
    ]
    b = burn(
        rows, date(2026, 7, 1), amount=1200, period={"start": "2026-04-16", "end": "2027-04-16"}
    )
    assert b.months == [date(2026, 4, 1), date(2026, 5, 1), date(2026, 6, 1)]
    assert b.forecast is not None
    assert b.forecast.months[-1] == date(2027, 4, 1)
    assert b.at_end == (Decimal(1200), Decimal(1200), Decimal(1200))
    assert commitment_alerts([b], AlertTolerances()) == []


def test_the_forecast_document_backtests_the_commitments_own_history() -> None:
    from archipel.ledger._documents import finops_report

    rows = monthly(*[str(100 * k) for k in range(1, 9)])  # 100, 200, ..., 800: a straight line
    doc = finops_report(spec(), frame(*rows), RATES, date(2026, 9, 15), path=True)
    (c,) = doc["commitments"]
    # 8 whole months (September is in progress): origins 6 and 7, the trend exact
    assert [(s["method"], s["origins"], s["mae"]) for s in c["backtest"]] == [
        ("trend", 2, "0"),
        ("last value", 2, "200"),  # 1, 2, ..., 8 in test_forecast.py, times 100
        ("linear burn", 2, "600"),
    ]
    short = finops_report(spec(), frame(*rows[:3]), RATES, date(2026, 4, 1), path=True)
    assert short["commitments"][0]["backtest"] is None  # too short a history to back-test
