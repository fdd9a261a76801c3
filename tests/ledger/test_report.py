"""The report's figures on a small ledger, each worked out by hand.

The ledger (report_fixtures.ROWS), in USD at 1 EUR = 1.10 USD:

| provider | country | tenant    | workload | month   | GPU-h | cost           |
| aws      | US      | research  | pretrain | 2026-01 | 100   | 400 USD        |
| aws      | US      | research  | pretrain | 2026-02 | 100   | 400 USD        |
| scaleway | FR      | radiology | finetune | 2026-01 | 50    | 100 EUR = 110  |
| ovhcloud | DE      | radiology | serve    | 2026-02 | 30    | 60 EUR = 66    |
| nimbus   | CH      | marketing | chat     | 2026-02 | 20    | 24 USD         |
| azure    | JP      | marketing | chat     | 2026-03 | 0     | nothing (none) |
| azure    | BR      | research  | pretrain | 2026-03 | 100   | 300 USD        |

Total 1,300 USD and 400 GPU-hours over 7 entries. Shares are kept to six decimals:
800 / 1300 = 0.615385, 300 / 1300 = 0.230769, 110 / 1300 = 0.084615, 66 / 1300 =
0.050769, 24 / 1300 = 0.018462, 176 / 1300 = 0.135385, 1100 / 1300 = 0.846154.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.core import Concentration, InputError
from archipel.ledger._budgets import period_of
from archipel.ledger._report import (
    Report,
    Share,
    actual_burn_down,
    build_report,
    rates_into,
    report_document,
    report_tables,
)

from .report_fixtures import (
    LAW,
    RATES,
    ROWS,
    Budget,
    Burn,
    Commitment,
    Forecast,
    Period,
    Spec,
    facts,
    ledger_frame,
)

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
D = Decimal


def report(
    spec: Spec | None = None,
    *,
    rows: list[tuple[Any, ...]] = ROWS,
    currency: str = "USD",
    today: date = date(2026, 3, 15),
    top: int = 10,
    burn_down: Any = None,
) -> Report:
    return build_report(
        ledger_frame(rows),
        spec or Spec(),
        currency=currency,
        rates=RATES,
        jurisdictions=LAW,
        provider_facts=facts,
        today=today,
        generated_at=NOW,
        top=top,
        burn_down=burn_down or _no_forecast,
    )


def _no_forecast(*_args: Any, **_kwargs: Any) -> list[Any]:
    return []


def shares(rows: tuple[Share, ...]) -> list[tuple[str, str, str, str, str]]:
    return [
        (s.name, str(s.spend), str(s.spend_share), str(s.gpu_hours), str(s.gpu_share)) for s in rows
    ]


def test_totals_and_period() -> None:
    t = report().totals
    assert (t.spend, t.gpu_hours, t.entries) == (D(1300), D(400), 7)
    assert (t.input_tokens, t.output_tokens) == (1010, 500)
    assert (t.first, t.last) == (datetime(2026, 1, 10), datetime(2026, 3, 5, 1))


def test_spend_by_provider_and_month() -> None:
    r = report()
    assert r.months == (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))
    assert [(m.month.month, m.provider, m.spend, m.gpu_hours) for m in r.by_month] == [
        (1, "aws", D(400), D(100)),
        (1, "scaleway", D(110), D(50)),
        (2, "aws", D(400), D(100)),
        (2, "nimbus", D(24), D(20)),
        (2, "ovhcloud", D(66), D(30)),
        (3, "azure", D(300), D(100)),
    ]


def test_provider_shares_of_spend_and_gpu_hours() -> None:
    assert [(n, D(s), D(ss), D(g), D(gs)) for n, s, ss, g, gs in shares(report().providers)] == [
        ("aws", D(800), D("0.615385"), D(200), D("0.5")),
        ("azure", D(300), D("0.230769"), D(100), D("0.25")),
        ("scaleway", D(110), D("0.084615"), D(50), D("0.125")),
        ("ovhcloud", D(66), D("0.050769"), D(30), D("0.075")),
        ("nimbus", D(24), D("0.018462"), D(20), D("0.05")),
    ]


def test_jurisdiction_shares_come_from_the_country_groups() -> None:
    got = [(n, D(s), D(ss), D(g), D(gs)) for n, s, ss, g, gs in shares(report().jurisdictions)]
    assert got == [
        ("EU/EEA", D(176), D("0.135385"), D(80), D("0.2")),  # FR 110 + DE 66
        ("adequacy", D(24), D("0.018462"), D(20), D("0.05")),  # CH 24, JP nothing
        ("US", D(800), D("0.615385"), D(200), D("0.5")),  # partial adequacy stays apart
        ("other", D(300), D("0.230769"), D(100), D("0.25")),  # BR: not in this law
        ("unknown", D(0), D(0), D(0), D(0)),
    ]


def test_cloud_act_exposure_comes_from_the_provider_registry() -> None:
    r = report()
    got = [(n, D(s), D(g)) for n, s, _, g, _ in shares(r.cloud_act)]
    assert got == [
        ("yes", D(1100), D(300)),
        ("via-parent", D(0), D(0)),
        ("unclear", D(0), D(0)),
        ("no", D(176), D(80)),
        ("unknown", D(24), D(20)),  # nimbus is not in the registry
    ]
    assert (r.exposed.spend, r.exposed.spend_share, r.exposed.gpu_share) == (
        D(1100),
        D("0.846154"),
        D("0.75"),
    )


def test_top_workloads_and_tenants() -> None:
    r = report(top=2)
    assert [(w.name, w.spend, w.gpu_hours) for w in r.workloads] == [
        ("pretrain", D(1100), D(300)),
        ("finetune", D(110), D(50)),
    ]
    r = report()
    assert [(t.name, t.spend, t.entries) for t in r.tenants] == [
        ("research", D(1100), 3),
        ("radiology", D(176), 2),
        ("marketing", D(24), 2),  # the costless request counts as an entry
    ]


def test_converting_into_euros_uses_the_cross_rate() -> None:
    # USD 1 = EUR 1 / 1.10 = 0.909090909091 (12 decimals, half-even, as the catalog does):
    # research = 1100 USD x 0.909090909091 = 1000.0000000001, kept to the nano-unit = 1000
    r = report(currency="EUR")
    assert [(t.name, t.spend) for t in r.tenants] == [
        ("research", D("1000.000000000")),
        ("radiology", D(160)),  # 100 + 60 EUR: no conversion
        ("marketing", D("21.818181818")),  # 24 x 0.909090909091 = 21.818181818184
    ]


def test_a_currency_without_a_rate_is_refused() -> None:
    with pytest.raises(InputError, match="--currency: no exchange rate for currency 'CHF'"):
        report(currency="CHF")
    rows = [(*ROWS[0][:9], "5", "GBP")]
    with pytest.raises(InputError, match="no exchange rate from GBP"):
        report(rows=rows)


CAPS = [
    # (name, concentration, caps per provider in order, alerted providers)
    ("under the cap", Concentration(max_share=0.7, measure="spend"), ["0.7"] * 5, []),
    ("aws over the spend cap", Concentration(max_share=0.6, measure="spend"), ["0.6"] * 5, ["aws"]),
    (
        "own cap for azure, by GPU-hours",
        Concentration(max_share=0.45, measure="gpu_hours", providers={"azure": 0.2}),
        ["0.45", "0.2", "0.45", "0.45", "0.45"],
        ["aws", "azure"],  # aws 0.5 > 0.45, azure 0.25 > 0.2
    ),
]


@pytest.mark.parametrize(("name", "cap", "caps", "alerted"), CAPS, ids=[c[0] for c in CAPS])
def test_concentration_against_the_cap(
    name: str, cap: Concentration, caps: list[str], alerted: list[str]
) -> None:
    r = report(Spec(concentration=cap))
    assert [str(s.cap) for s in r.providers] == caps
    assert [a.subject for a in r.alerts if a.kind == "concentration"] == alerted


def test_concentration_alert_says_what_and_how_much() -> None:
    r = report(Spec(concentration=Concentration(max_share=0.6, measure="spend")))
    assert [a.message for a in r.alerts] == ["aws holds 61.5% of spend, above the cap of 60.0%"]


AWS = Commitment(
    provider="aws",
    amount=D(2400),
    currency="USD",
    period=Period(date(2026, 1, 1), date(2027, 1, 1)),
    name="aws-2026",
    ramp=(D(2000),),
)


def test_without_a_forecast_the_commitment_is_actual_spend_and_the_straight_line() -> None:
    r = build_report(
        ledger_frame(),
        Spec(commitments=(AWS,)),
        currency="USD",
        rates=RATES,
        jurisdictions=LAW,
        provider_facts=facts,
        today=date(2026, 3, 15),
        generated_at=NOW,
        burn_down=actual_burn_down,
    )
    (c,) = r.commitments
    assert (c.name, c.provider, c.amount) == ("aws-2026", "aws", D(2400))
    assert c.months == (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))
    assert c.spent == (D(400), D(800), D(800))  # cumulative
    assert c.expected == D(480)  # 2400 x 73 days / 365
    assert c.ramp == ((date(2027, 1, 1), D(2000)),)
    assert c.forecast is None


def test_a_commitment_in_another_currency_burns_in_its_own() -> None:
    eur = Commitment(
        provider="aws",
        amount=D(1000),
        currency="EUR",
        period=Period(date(2026, 1, 1), date(2026, 3, 1)),
    )
    r = build_report(
        ledger_frame(),
        Spec(commitments=(eur,)),
        currency="USD",
        rates=RATES,
        jurisdictions=LAW,
        provider_facts=facts,
        today=date(2026, 3, 15),
        generated_at=NOW,
        burn_down=actual_burn_down,
    )
    (c,) = r.commitments
    # 400 USD x 0.909090909091 = 363.6363636364 -> 363.636363636 per month, summed
    assert c.spent == (D("363.636363636"), D("727.272727272"))
    assert (c.name, c.expected) == ("aws", D(1000))  # the term is over: the whole amount


def _burns(forecast: Forecast) -> Any:
    calls: list[Any] = []

    def burn_down(con: Any, spec: Spec, *, rates: Any, today: date) -> list[Burn]:
        calls.append((spec, rates, today))
        months = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
        spent = [D(400), D(800), D(800)]
        return [Burn(spec.commitments[0], "USD", months, spent, D(2400), forecast)]

    burn_down.calls = calls  # type: ignore[attr-defined]
    return burn_down


FORECASTS = [
    # (name, at end (mean, low, high), alert kind, severity)
    ("on track", (D(2400), D(2200), D(2600)), None, None),
    ("short, but the band reaches the amount", (D(2200), D(1900), D(2500)), "shortfall", "warning"),
    ("short, the whole band", (D(1800), D(1500), D(2100)), "shortfall", "critical"),
    ("overrun", (D(2600), D(2450), D(2800)), "overrun", "warning"),
]


@pytest.mark.parametrize(
    ("name", "at_end", "kind", "severity"), FORECASTS, ids=[f[0] for f in FORECASTS]
)
def test_forecast_band_and_its_alerts(
    name: str, at_end: tuple[Decimal, Decimal, Decimal], kind: str | None, severity: str | None
) -> None:
    forecast = Forecast(
        months=[date(2026, 4, 1), date(2026, 12, 1)],
        mean=[D(1000), at_end[0]],
        low=[D(900), at_end[1]],
        high=[D(1100), at_end[2]],
        level=0.8,
        at_end=at_end,
        method="linear",
    )
    burn_down = _burns(forecast)
    r = report(Spec(commitments=(AWS,)), burn_down=burn_down)
    (c,) = r.commitments
    assert c.forecast is not None
    assert (c.forecast.at_end, c.forecast.level, c.forecast.method) == (at_end, 0.8, "linear")
    assert c.spent == (D(400), D(800), D(800))
    assert [(a.kind, a.severity) for a in r.alerts] == ([(kind, severity)] if kind else [])
    (call,) = burn_down.calls
    assert call[1] == RATES and call[2] == date(2026, 3, 15)


def test_shortfall_alert_message() -> None:
    forecast = Forecast(
        [date(2026, 12, 1)],
        [D(1800)],
        [D(1500)],
        [D(2100)],
        0.8,
        (D(1800), D(1500), D(2100)),
        "linear",
    )
    r = report(Spec(commitments=(AWS,)), burn_down=_burns(forecast))
    assert r.alerts[0].message == (
        "commitment aws-2026: forecast at term end 1,800.00 [1,500.00, 2,100.00] USD, "
        "short of 2,400.00 USD"
    )


PERIODS = [
    ("month", date(2026, 2, 20), (date(2026, 2, 1), date(2026, 3, 1))),
    ("month", date(2026, 12, 31), (date(2026, 12, 1), date(2027, 1, 1))),
    ("quarter", date(2026, 2, 20), (date(2026, 1, 1), date(2026, 4, 1))),
    ("quarter", date(2026, 11, 2), (date(2026, 10, 1), date(2027, 1, 1))),
    ("year", date(2026, 2, 20), (date(2026, 1, 1), date(2027, 1, 1))),
]


@pytest.mark.parametrize(("kind", "today", "expected"), PERIODS)
def test_budget_periods(kind: str, today: date, expected: tuple[date, date]) -> None:
    p = period_of(kind, today)
    assert (p.start, p.end) == expected


BUDGETS = [
    # (budget, spent, used, projected, alerts); today 2026-02-20: the entries before it count
    # (the ledger's rule: the day in progress does not), and 19 days of February are over
    (
        Budget(
            "research-feb", D(500), "USD", "month", tenant="research", alert_at=(D("0.5"), D(1))
        ),
        D(400),
        D("0.8"),
        D("589.473684211"),  # 400 x 28 / 19
        [("budget", "warning"), ("budget", "warning")],  # 50% reached; 100% forecast
    ),
    (
        Budget("radiology-q1", D(150), "USD", "quarter", tenant="radiology", alert_at=(D(1),)),
        D(110),  # 100 EUR of January; the 60 EUR of 2026-02-20 are today's
        D("0.733333"),
        D(198),  # 110 x 90 / 50
        [("budget", "warning")],  # 100% forecast
    ),
    (
        Budget("scans-feb", D(100), "USD", "month", project="scans", alert_at=(D("0.8"),)),
        D(0),  # its only February entry is today's
        D(0),
        D(0),
        [],
    ),
    (
        Budget("ads-year", D(1000), "EUR", "year", project="ads", alert_at=(D("0.5"),)),
        D("21.818181818"),  # 24 USD at the cross rate 0.909090909091
        D("0.021818"),
        D("159.272727271"),  # x 365 / 50
        [],
    ),
]


@pytest.mark.parametrize(
    ("budget", "spent", "used", "projected", "alert"), BUDGETS, ids=[b[0].name for b in BUDGETS]
)
def test_budget_status(
    budget: Budget,
    spent: Decimal,
    used: Decimal,
    projected: Decimal,
    alert: list[tuple[str, str]],
) -> None:
    r = report(Spec(budgets=(budget,)), today=date(2026, 2, 20))
    (b,) = r.budgets
    assert (b.spent, b.used, b.projected) == (spent, used, projected)
    assert [(a.kind, a.severity) for a in r.alerts] == alert


def test_an_empty_ledger_reports_zeros() -> None:
    r = report(rows=[])
    assert (r.totals.spend, r.totals.entries, r.totals.first) == (D(0), 0, None)
    assert r.providers == () and r.by_month == () and r.workloads == ()
    assert all(s.spend == 0 for s in r.jurisdictions)


def test_json_document_holds_money_as_exact_strings() -> None:
    doc = report_document(report(currency="EUR"))
    assert doc["totals"]["spend"] == "1181.818181818"  # 1300 USD x 0.909090909091
    assert doc["tenants"][2] == {
        "name": "marketing",
        "spend": "21.818181818",
        "gpu_hours": "20",
        "input_tokens": 10,
        "output_tokens": 0,
        "entries": 2,
    }
    assert doc["cloud_act"]["exposed"]["spend_share"] == "0.846154"
    assert doc["period"] == {"first": "2026-01-10T00:00:00", "last": "2026-03-05T01:00:00"}


def test_csv_tables_have_one_header_and_exact_rows() -> None:
    tables = report_tables(report())
    assert set(tables) == {
        "by_month",
        "providers",
        "jurisdictions",
        "cloud_act",
        "workloads",
        "tenants",
        "commitments",
        "budgets",
        "alerts",
    }
    header, rows = tables["providers"]
    assert header == ("name", "spend_USD", "spend_share", "gpu_hours", "gpu_hours_share", "cap")
    assert rows[0] == ("aws", "800", "0.615385", "200", "0.5", "")


# an amount to the nano-unit, up to 9 whole digits: each group is kept to the nano-unit once
# converted (as `ledger show --currency` does), so finer amounts add up only to the nano-unit
amounts = st.builds(
    lambda units, scale: Decimal(units).scaleb(-scale),
    st.integers(min_value=0, max_value=10**18),
    st.integers(min_value=0, max_value=9),
).filter(lambda d: d <= 10**9)


@settings(max_examples=examples(20), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["aws", "azure", "scaleway", "nimbus"]),
            st.sampled_from(["US", "FR", "CH", "BR", None]),
            amounts,
        ),
        min_size=1,
        max_size=30,
    )
)
def test_every_breakdown_adds_up_to_the_total_exactly(
    entries: list[tuple[str, str | None, Decimal]],
) -> None:
    rows = [
        (p, c, "t", "p", f"w{i % 3}", "2026-01-01", 1, 0, 0, str(cost), "USD")
        for i, (p, c, cost) in enumerate(entries)
    ]
    r = report(rows=rows)
    total = sum((cost for _, _, cost in entries), Decimal(0))  # the oracle: Python's exact sum
    assert r.totals.spend == total
    for breakdown in (r.providers, r.jurisdictions, r.cloud_act):
        assert sum((s.spend for s in breakdown), Decimal(0)) == r.totals.spend
        assert sum((s.gpu_hours for s in breakdown), Decimal(0)) == len(entries)


def test_over_the_cap_is_judged_on_the_spec_measure_only() -> None:
    # aws: 61.5 % of spend but 50 % of GPU-hours, against a 55 % cap on GPU-hours
    r = report(Spec(concentration=Concentration(max_share=0.55, measure="gpu_hours")))
    doc = report_document(r)
    assert [p["over_cap"] for p in doc["providers"]] == [False] * 5
    assert r.alerts == ()


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP", "JPY"])
def test_rates_are_the_catalogs_as_plan_and_ledger_show_use_them(currency: str) -> None:
    from dataclasses import replace

    from archipel.catalog import SNAPSHOT_FILE, load_snapshot

    # the shipped rates, plus two more (ECB-like, one unit in USD) so that cross rates show
    shipped = load_snapshot(SNAPSHOT_FILE)
    rates = {**shipped.fx_rates, "GBP": D("1.268"), "JPY": D("0.006712")}
    snapshot = replace(shipped, fx_rates=rates)
    expected = snapshot.in_currency(currency).fx_rates  # the oracle: the catalog's own
    assert rates_into(snapshot.fx_rates, currency) == dict(expected)


def test_missing_quantities_count_as_none_used() -> None:
    # a source that leaves GPU-hours and tokens empty (NULL), not zero
    con = ledger_frame(ROWS[:1])
    con.execute("UPDATE entries SET gpu_hours = NULL, input_tokens = NULL, output_tokens = NULL")
    r = build_report(
        con,
        Spec(),
        currency="USD",
        rates=RATES,
        jurisdictions=LAW,
        provider_facts=facts,
        today=date(2026, 3, 15),
        generated_at=NOW,
    )
    t = r.totals
    assert (t.spend, t.gpu_hours, t.input_tokens, t.output_tokens) == (D(400), D(0), 0, 0)
    assert r.providers[0].gpu_share == 0
