"""Alerts: a commitment heading for a shortfall or an overrun, a budget crossing a threshold.

- ``shortfall``: the forecast at term end (its mean) is below the amount by
  more than the ``shortfall`` tolerance; ``critical`` when even the interval's
  high end is, or when the term is over. None while there is no forecast
  (before the first whole month of the term). Also when the current contract
  year's ramp minimum is ``at risk`` (its expected spend falls short), and
  when the last finished year ``missed`` its minimum.
- ``overrun``: the forecast at term end is above the amount by more than the
  ``overrun`` tolerance; ``critical`` once the spend to date already is.
- the same two for a fleet plan given as forecast input (``warning``): the
  position at term end if spend follows the plan from today on.
- ``budget``: the spend of the current period reached an ``alert_at``
  fraction of the amount (the highest one reached; ``critical`` from 1), or
  the period-end forecast will (``warning``, when it reaches a higher one
  than the spend already did).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from archipel.core import AlertTolerances
from archipel.ledger._budgets import BudgetStatus
from archipel.ledger._commitments import Burn

AlertKind = Literal["shortfall", "overrun", "budget"]
Severity = Literal["warning", "critical"]
KINDS: tuple[AlertKind, ...] = ("shortfall", "overrun", "budget")


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a FinOps owner should look at: what, about which commitment or budget."""

    kind: AlertKind
    subject: str
    message: str
    severity: Severity


def _money(amount: Decimal, currency: str) -> str:
    """An amount for a message: cents from 1 up, six decimals below."""
    if abs(amount) >= 1 or not amount:
        return f"{amount:,.2f} {currency}"
    return f"{amount.quantize(Decimal('0.000001')).normalize():f} {currency}"


def _percent(fraction: Decimal) -> str:
    return f"{fraction * 100:.0f}%"


def commitment_alerts(burns: Iterable[Burn], tolerances: AlertTolerances) -> list[Alert]:
    """The shortfall and overrun alerts of each burn-down."""
    out: list[Alert] = []
    for burn in burns:
        c = burn.commitment
        cur = burn.currency
        mean, low, high = burn.at_end
        over = burn.over
        known = over or burn.forecast is not None  # else too early to say where it ends
        floor = c.amount * (1 - tolerances.shortfall)
        ceiling = c.amount * (1 + tolerances.overrun)
        end = c.period.end
        if known and mean < floor:
            severity: Severity = "critical" if over or high < floor else "warning"
            what = "spent" if over else "forecast to spend"
            band = "" if over else f" ({_money(low, cur)} to {_money(high, cur)})"
            out.append(
                Alert(
                    "shortfall",
                    c.label,
                    f"{what} {_money(mean, cur)}{band} of {_money(c.amount, cur)} by {end}: "
                    f"short by {_money(c.amount - mean, cur)}",
                    severity,
                )
            )
        elif mean > ceiling:  # known or not: spend to date above the amount is an overrun
            severity = "critical" if burn.to_date > c.amount else "warning"
            what = "spent" if over or burn.forecast is None else "forecast to spend"
            band = "" if burn.forecast is None else f" ({_money(low, cur)} to {_money(high, cur)})"
            out.append(
                Alert(
                    "overrun",
                    c.label,
                    f"{what} {_money(mean, cur)}{band} against {_money(c.amount, cur)} by "
                    f"{end}: over by {_money(mean - c.amount, cur)}",
                    severity,
                )
            )
        out += _ramp_alerts(burn)
        out += _planned_alerts(burn, floor, ceiling)
    return out


def _planned_alerts(burn: Burn, floor: Decimal, ceiling: Decimal) -> list[Alert]:
    """A fleet plan that, followed, ends the term short of the amount or over it."""
    p = burn.planned
    if p is None:
        return []
    c = burn.commitment
    cur = burn.currency
    what = f"as planned ({p.plan}, {_money(p.daily, cur)} a day), spends {_money(p.at_end, cur)}"
    if p.at_end < floor:
        message = (
            f"{what} of {_money(c.amount, cur)} by {c.period.end}: "
            f"short by {_money(c.amount - p.at_end, cur)}"
        )
        return [Alert("shortfall", c.label, message, "warning")]
    if p.at_end > ceiling:
        message = (
            f"{what} against {_money(c.amount, cur)} by {c.period.end}: "
            f"over by {_money(p.at_end - c.amount, cur)}"
        )
        return [Alert("overrun", c.label, message, "warning")]
    return []


def _ramp_alerts(burn: Burn) -> list[Alert]:
    c = burn.commitment
    cur = burn.currency
    out = []
    finished = [y for y in burn.ramp if y.period.end <= burn.today]
    y = finished[-1] if finished else None
    if y is not None and y.status == "missed" and y.minimum is not None:
        out.append(
            Alert(
                "shortfall",
                c.label,
                f"contract year {y.year} ({y.period.start} to {y.period.end}) spent "
                f"{_money(y.spent, cur)} of its minimum {_money(y.minimum, cur)}",
                "critical",
            )
        )
    year = burn.current_year
    if year is not None and year.status == "at risk" and year.minimum is not None:
        expected = year.expected if year.expected is not None else year.spent
        out.append(
            Alert(
                "shortfall",
                c.label,
                f"contract year {year.year} (to {year.period.end}) is expected to spend "
                f"{_money(expected, cur)} of its minimum {_money(year.minimum, cur)} "
                f"({_money(year.spent, cur)} so far)",
                "warning",
            )
        )
    return out


def budget_alerts(statuses: Iterable[BudgetStatus]) -> list[Alert]:
    """The alerts of each budget whose spend or forecast reached one of its thresholds."""
    out: list[Alert] = []
    for s in statuses:
        b = s.budget
        cur = b.currency
        reached = [f for f in b.alert_at if s.spent >= b.amount * f]
        heading = [
            f
            for f in b.alert_at
            if s.forecast is not None and s.forecast >= b.amount * f and f not in reached
        ]
        period = f"{b.period} from {s.period.start}"
        if reached:
            f = reached[-1]
            out.append(
                Alert(
                    "budget",
                    b.name,
                    f"spent {_money(s.spent, cur)} this {period}: {_percent(s.ratio)} of "
                    f"{_money(b.amount, cur)} (alert at {_percent(f)})",
                    "critical" if f >= 1 else "warning",
                )
            )
        if heading:
            f = heading[-1]
            assert s.forecast is not None
            out.append(
                Alert(
                    "budget",
                    b.name,
                    f"forecast to spend {_money(s.forecast, cur)} by {s.period.end} at this "
                    f"{b.period}'s run rate: {_percent(s.forecast / b.amount)} of "
                    f"{_money(b.amount, cur)} (alert at {_percent(f)})",
                    "warning",
                )
            )
    return out
