"""Commitments burned down from the ledger: spent to date, month by month, and heading where.

A commitment (:class:`archipel.core.Commitment`, the fleet planner's) is
burned by the current entries of its provider that started within its period
and before ``today`` (the day in progress is not counted), narrowed by its
``burns`` scope: regions, accelerators (matched without regard to case) and
services. An entry's service is ``inference`` for the gateway's, ``compute``
for the runs', and otherwise ``inference`` if it carries tokens, ``compute``
if it carries GPU-hours. An entry counts in the month it started.

Each month's spend is converted into the commitment's currency at the
catalog's rates (the cross rates that ``archipel plan --currency`` uses),
exactly, and rounded half-even to the nano-unit once per month. Entries Archipel
priced at list (the gateway's, the control plane's, native entry files) burn
net of the commitment's ``discount``; rows a provider billed (FOCUS and CUR
imports) are net of their discounts already, and burn as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Literal

import duckdb

from archipel.core import Commitment, FinOpsSpec, InputError, Period, cross_rate
from archipel.ledger._forecast import LEVEL, METHOD, WINDOW, project, to_decimal
from archipel.ledger._frame import LIST_PRICED
from archipel.ledger._plan import FleetPlanSpend, Planned, planned_position

_NANO = Decimal(1).scaleb(-9)

#: an entry's service, from its source and what it carries (see the module's text)
SERVICE = (
    "CASE WHEN source = 'gateway' THEN 'inference' WHEN source = 'runs' THEN 'compute' "
    "WHEN coalesce(input_tokens, 0) + coalesce(output_tokens, 0) > 0 THEN 'inference' "
    "WHEN coalesce(gpu_hours, 0) > 0 THEN 'compute' END"
)

RampStatus = Literal["met", "missed", "on track", "at risk", "not started", "no minimum"]


@dataclass(frozen=True, slots=True)
class Forecast:
    """The cumulative position over the rest of the term, with an interval at ``level``."""

    months: list[date]
    mean: list[Decimal]
    low: list[Decimal]
    high: list[Decimal]
    level: float
    method: str

    @property
    def at_end(self) -> tuple[Decimal, Decimal, Decimal]:
        """(mean, low, high) at term end."""
        return self.mean[-1], self.low[-1], self.high[-1]


@dataclass(frozen=True, slots=True)
class RampYear:
    """One contract year: its minimum (if the ramp gives one) and how it stands."""

    year: int  # 1 for the first contract year
    period: Period
    minimum: Decimal | None
    spent: Decimal  # in the year, to date
    expected: Decimal | None  # forecast spend of the whole year (mean), for the current year
    status: RampStatus


@dataclass(frozen=True, slots=True)
class Burn:
    """A commitment burned down: cumulative spend at each month's end, and the forecast.

    ``months`` are the first days of the months of the period up to today;
    ``spent[i]`` the cumulative spend at the end of month ``i`` (the last one:
    to date). Amounts are in ``currency``, the commitment's, net of its discount.
    """

    commitment: Commitment
    currency: str
    months: list[date]
    spent: list[Decimal]
    target: Decimal
    forecast: Forecast | None
    ramp: list[RampYear]
    today: date
    planned: Planned | None = None  # the position if spend follows a fleet plan

    @property
    def to_date(self) -> Decimal:
        return self.spent[-1] if self.spent else Decimal(0)

    @property
    def ratio(self) -> Decimal:
        """The share of the amount burned to date."""
        return self.to_date / self.target

    @property
    def over(self) -> bool:
        """Whether the term has ended (its position is then what was spent)."""
        return self.today >= self.commitment.period.end

    @property
    def at_end(self) -> tuple[Decimal, Decimal, Decimal]:
        """(mean, low, high) at term end: the forecast's, or what was spent so far when there
        is no forecast (the term is over, or not a whole month of it has passed)."""
        if self.forecast is not None:
            return self.forecast.at_end
        return self.to_date, self.to_date, self.to_date

    @property
    def current_year(self) -> RampYear | None:
        """The contract year ``today`` is in (None before the start or after the end)."""
        for year in self.ramp:
            if year.period.start <= self.today < year.period.end:
                return year
        return None


# -- months ---------------------------------------------------------------------------------


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def months_of(start: date, end: date) -> list[date]:
    """The first days of the months that ``[start, end)`` touches (none when empty)."""
    out: list[date] = []
    month = month_of(start)
    while month < end:
        out.append(month)
        month = next_month(month)
    return out


def _days(start: date, end: date) -> int:
    return max(0, (end - start).days)


# -- money ----------------------------------------------------------------------------------


def rate_into(code: str, target: str, rates: Mapping[str, Decimal], where: str) -> Decimal:
    """One unit of ``code`` in ``target``: the cross rate of their rates in the catalog."""
    if code == target:
        return Decimal(1)
    missing = [c for c in (code, target) if c not in rates]
    if missing:
        raise InputError(
            f"{where}: no exchange rate for {' or '.join(missing)}; the catalog knows "
            f"{', '.join(sorted(rates))} (`archipel catalog refresh` fetches the ECB's)"
        )
    return cross_rate(rates[code], rates[target])


def in_currency(
    amounts: Sequence[tuple[str, Decimal]],
    target: str,
    rates: Mapping[str, Decimal],
    where: str,
    *,
    keep: Decimal = Decimal(1),
) -> Decimal:
    """The sum of ``(currency, amount)`` in ``target``, times ``keep``, rounded once."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = sum(
            (amount * rate_into(code, target, rates, where) for code, amount in amounts),
            Decimal(0),
        )
        return (exact * keep).quantize(_NANO)


# -- the burn-down --------------------------------------------------------------------------


def scope_sql(c: Commitment, until: date) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the entries that burn ``c`` before ``until``."""
    where = ["provider = ?", '"start" >= ?', '"start" < ?', "cost IS NOT NULL"]
    params: list[Any] = [c.provider, c.period.start, until]
    burns = c.burns
    if burns.regions:
        where.append(f"region IN ({', '.join('?' for _ in burns.regions)})")
        params += burns.regions
    if burns.accelerators:
        where.append(f"upper(accelerator) IN ({', '.join('?' for _ in burns.accelerators)})")
        params += [a.upper() for a in burns.accelerators]
    if burns.services:
        where.append(f"({SERVICE}) IN ({', '.join('?' for _ in burns.services)})")
        params += list(burns.services)
    return " AND ".join(where), params


def monthly_spend(
    connection: duckdb.DuckDBPyConnection,
    c: Commitment,
    until: date,
    rates: Mapping[str, Decimal],
) -> dict[date, Decimal]:
    """Per month of ``c``'s period before ``until``: the spend that burns it, net, converted."""
    clause, params = scope_sql(c, until)
    rows = connection.execute(
        f"SELECT CAST(date_trunc('month', \"start\") AS DATE), currency, {LIST_PRICED}, "
        f"sum(cost) FROM entries WHERE {clause} GROUP BY 1, 2, 3",
        params,
    ).fetchall()
    per_month: dict[date, list[tuple[str, Decimal]]] = {}
    for month, code, at_list, amount in rows:
        if code is None or amount is None:
            continue
        # list prices burn net of the discount; a provider's billed rows are net already
        with localcontext() as ctx:
            ctx.prec = 80  # exact: the sum is rounded once, in in_currency
            net = Decimal(amount) * (1 - c.discount) if at_list else Decimal(amount)
        per_month.setdefault(month, []).append((code, net))
    where = f"commitment {c.label}"
    return {
        month: in_currency(parts, c.currency, rates, where) for month, parts in per_month.items()
    }


def burn_down(
    connection: duckdb.DuckDBPyConnection,
    spec: FinOpsSpec,
    *,
    rates: Mapping[str, Decimal],
    today: date,
    level: float = LEVEL,
    window: int = WINDOW,
    plan: FleetPlanSpend | None = None,
) -> list[Burn]:
    """Each commitment of ``spec`` burned down from the ``entries`` relation, with its forecast
    (and, given a fleet ``plan``, its position if spend follows it)."""
    return [
        burn_of(connection, c, rates=rates, today=today, level=level, window=window, plan=plan)
        for c in spec.commitments
    ]


def burn_of(
    connection: duckdb.DuckDBPyConnection,
    c: Commitment,
    *,
    rates: Mapping[str, Decimal],
    today: date,
    level: float = LEVEL,
    window: int = WINDOW,
    plan: FleetPlanSpend | None = None,
) -> Burn:
    """One commitment burned down to ``today`` (exclusive), and forecast to its end."""
    start, end = c.period.start, c.period.end
    until = min(max(today, start), end)  # actuals are of [start, until)
    spend = monthly_spend(connection, c, until, rates)
    months = months_of(start, until)
    spent: list[Decimal] = []
    running = Decimal(0)
    for month in months:
        running += spend.get(month, Decimal(0))
        spent.append(running)
    forecast = _forecast(c, months, spend, until, running, level, window)
    planned = None
    if plan is not None:
        ahead = months_of(until, end)
        planned = planned_position(
            c,
            plan,
            rate=rate_into(plan.currency, c.currency, rates, f"fleet plan {plan.name}"),
            until=until,
            to_date=running,
            months=ahead,
            month_end={m: min(next_month(m), end) for m in ahead},
        )
    return Burn(
        commitment=c,
        currency=c.currency,
        months=months,
        spent=spent,
        target=c.amount,
        forecast=forecast,
        ramp=_ramp(c, spend, until, running, forecast),
        today=today,
        planned=planned,
    )


def _coverage(month: date, start: date, end: date) -> Fraction:
    """The share of ``month`` inside ``[start, end)``."""
    following = next_month(month)
    inside = _days(max(month, start), min(following, end))
    return Fraction(inside, _days(month, following))


def _forecast(
    c: Commitment,
    months: list[date],
    spend: Mapping[date, Decimal],
    until: date,
    to_date: Decimal,
    level: float,
    window: int,
) -> Forecast | None:
    start, end = c.period.start, c.period.end
    if until >= end:
        return None  # the term is over: its position is what was spent
    index = {m: k for k, m in enumerate(months_of(start, end))}
    history = []
    for month in months:
        if next_month(month) > until:
            break  # the month in progress is not a whole month of history
        share = _coverage(month, start, end)
        history.append((index[month], Fraction(spend.get(month, Decimal(0))) / share))
    if not history:
        return None
    future = []
    for month in months_of(until, end):
        following = next_month(month)
        share = Fraction(_days(max(month, until), min(following, end)), _days(month, following))
        future.append((index[month], share))
    p = project(history, future, level=level, window=window)
    spent = Fraction(to_date)
    return Forecast(
        months=months_of(until, end),
        mean=[to_decimal(spent + v) for v in p.mean],
        low=[to_decimal(spent + v) for v in p.low],
        high=[to_decimal(spent + v) for v in p.high],
        level=level,
        method=METHOD.format(window=window)
        if p.model == "trend"
        else "flat: the mean of fewer than three whole months, residual prediction interval",
    )


def _ramp(
    c: Commitment,
    spend: Mapping[date, Decimal],
    until: date,
    to_date: Decimal,
    forecast: Forecast | None,
) -> list[RampYear]:
    """Each contract year's spend against its minimum.

    A year's spend is that of the months that start within it (a contract year
    that does not start on the first of a month is approximated to whole
    months). The current year is ``on track`` when its expected spend (its
    spend to date plus the forecast mean up to the year's end) reaches its
    minimum, ``at risk`` when it does not.
    """
    out = []
    for k, year in enumerate(c.years):
        minimum = c.ramp[k] if k < len(c.ramp) else None
        spent = sum(
            (v for m, v in spend.items() if year.start <= max(m, c.period.start) < year.end),
            Decimal(0),
        )
        expected: Decimal | None = None
        status: RampStatus
        if until <= year.start:
            status = "not started"
        elif until >= year.end:
            expected = spent
            status = "no minimum" if minimum is None else ("met" if spent >= minimum else "missed")
        else:
            expected = spent
            if forecast is not None:
                before = [i for i, m in enumerate(forecast.months) if m < year.end]
                if before:  # the forecast is cumulative over the term: take the year's part
                    expected = spent + forecast.mean[before[-1]] - to_date
            if minimum is None:
                status = "no minimum"
            elif spent >= minimum:
                status = "met"
            else:
                status = "on track" if expected >= minimum else "at risk"
        out.append(RampYear(k + 1, year, minimum, spent, expected, status))
    return out
