"""A fleet plan as a forecast input: where each commitment ends if spend follows the plan.

``archipel fleet plan FLEET.yaml --json`` prices every placement over the
fleet's ``horizon``. Read here, the plan is a standing fleet: its placements
that burn a commitment (its provider, narrowed by its ``burns`` scope; a
plan's placements are ``compute``) spend their cost over the horizon at an
even daily rate, and keep that rate from today to the term's end, whatever
the horizon's own dates. The planned position at the end of each month is
the spend to date (from the ledger) plus that rate times the days since
today.

Plan prices are catalog (list) prices: they burn net of the commitment's
``discount``, as the ledger's list-priced entries do, and are converted into
the commitment's currency at the catalog's rates. All of it is exact
(:class:`~fractions.Fraction`), rounded half-even to the nano-unit once per
figure. The trend forecast (:mod:`archipel.ledger._forecast`) is left as it
is: the two answer different questions (where the history is heading, where
the plan would take it), and a gap between them is itself worth a look.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from archipel.core import Commitment, InputError, Period
from archipel.ledger._forecast import to_decimal

#: the service a fleet plan's placements burn (instances, not tokens)
PLAN_SERVICE = "compute"


@dataclass(frozen=True, slots=True)
class PlannedLine:
    """One placement of the plan: where it runs and what it costs over the horizon."""

    workload: str
    provider: str
    region: str
    accelerator: str
    cost: Decimal  # in the plan's currency, over the whole horizon


@dataclass(frozen=True, slots=True)
class FleetPlanSpend:
    """What a fleet plan spends, and over which days."""

    name: str
    currency: str
    horizon: Period
    lines: tuple[PlannedLine, ...]

    @property
    def days(self) -> int:
        return (self.horizon.end - self.horizon.start).days


@dataclass(frozen=True, slots=True)
class Planned:
    """A commitment's position if spend follows the plan from today on."""

    plan: str
    daily: Decimal  # the plan's spend per day that burns the commitment, net, converted
    months: list[date]  # first days of the months from today's to the term's last
    position: list[Decimal]  # cumulative at each of those months' ends (or the term's)

    @property
    def at_end(self) -> Decimal:
        return self.position[-1]


def _field(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise InputError(f"{where}: no `{key}`; give the output of `archipel fleet plan --json`")
    return doc[key]


def _money(text: Any, where: str) -> Decimal:
    try:
        value = Decimal(str(text)) if isinstance(text, str) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0:
        raise InputError(f"{where}: {text!r} is not an amount (a decimal string, at least 0)")
    return value


def parse_fleet_plan(doc: Any, source: str = "plan") -> FleetPlanSpend:
    """A fleet plan document (``archipel fleet plan --json``) as planned spend."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: not a fleet plan (a JSON object from `fleet plan --json`)")
    if _field(doc, "feasible", source) is not True:
        raise InputError(
            f"{source}: the plan is infeasible, so it places nothing; fix the fleet "
            "(`archipel fleet plan` says which rules conflict) and plan it again"
        )
    horizon = _field(doc, "horizon", source)
    if not isinstance(horizon, dict):
        raise InputError(
            f"{source}: no `horizon` dates; plan the fleet again with this version "
            "(`archipel fleet plan FLEET.yaml --json`), which writes them"
        )
    try:
        period = Period.model_validate(horizon)
    except ValueError as exc:
        raise InputError(f"{source}: horizon {horizon!r}: {exc}") from None
    currency = _field(doc, "currency", source)
    if not isinstance(currency, str) or len(currency) != 3:
        raise InputError(f"{source}: currency {currency!r} is not an ISO 4217 code")
    lines: list[PlannedLine] = []
    assignments = _field(doc, "assignments", source)
    if not isinstance(assignments, list):
        raise InputError(f"{source}: `assignments` is not a list")
    for a in assignments:
        workload = str(a.get("workload", "?")) if isinstance(a, dict) else "?"
        placements = a.get("placements") if isinstance(a, dict) else None
        if not isinstance(placements, list):
            raise InputError(f"{source}: workload {workload}: no list of `placements`")
        for k, p in enumerate(placements):
            where = f"{source}: workload {workload}, placement {k + 1}"
            if not isinstance(p, dict):
                raise InputError(f"{where}: not an object")
            lines.append(
                PlannedLine(
                    workload=workload,
                    provider=str(_field(p, "provider", where)),
                    region=str(_field(p, "region", where)),
                    accelerator=str(_field(p, "accelerator", where)),
                    cost=_money(_field(p, "total_cost", where), f"{where}: total_cost"),
                )
            )
    return FleetPlanSpend(str(doc.get("name", source)), currency.upper(), period, tuple(lines))


def read_fleet_plan(path: Path, max_bytes: int) -> FleetPlanSpend:
    """The fleet plan in ``path`` (JSON), refused whole if it is larger than ``max_bytes``."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{path}: {size:,} bytes, more than the {max_bytes:,} allowed "
                "(raise --max-file-size)"
            )
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not JSON ({exc}); give `fleet plan --json` output") from None
    return parse_fleet_plan(doc, str(path))


def burns(c: Commitment, line: PlannedLine) -> bool:
    """Whether ``line`` burns ``c``: same provider, within its ``burns`` scope."""
    scope = c.burns
    return (
        line.provider == c.provider
        and (not scope.regions or line.region in scope.regions)
        and (
            not scope.accelerators
            or line.accelerator.upper() in {a.upper() for a in scope.accelerators}
        )
        and (not scope.services or PLAN_SERVICE in scope.services)
    )


def planned_position(
    c: Commitment,
    plan: FleetPlanSpend,
    *,
    rate: Decimal,
    until: date,
    to_date: Decimal,
    months: list[date],
    month_end: Mapping[date, date],
) -> Planned | None:
    """``c``'s position at each month's end if spend follows ``plan`` from ``until`` on.

    ``rate`` converts one unit of the plan's currency into the commitment's; ``months``
    are the first days of the months of ``[until, term end)`` and ``month_end`` the day
    each one's position is taken (its next month's first day, or the term's end).
    """
    if until >= c.period.end or not months:
        return None
    cost = sum((Fraction(line.cost) for line in plan.lines if burns(c, line)), Fraction(0))
    daily = cost * Fraction(rate) * (1 - Fraction(c.discount)) / plan.days
    spent = Fraction(to_date)
    position = [to_decimal(spent + daily * (month_end[m] - until).days) for m in months]
    return Planned(plan.name, to_decimal(daily), months, position)
