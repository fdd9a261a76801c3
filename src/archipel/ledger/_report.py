"""The report's figures: the ``entries`` relation and a FinOps spec in, exact figures out.

Pure: :func:`build_report` reads a DuckDB connection holding ``entries`` (see
``_frame``) and returns a :class:`Report`; drawing it is ``_report_html``'s job,
and the CLI writes it. Every sum is taken by DuckDB in exact ``DECIMAL``: one
scan of ``entries`` groups it into a small table per month, provider, country,
tenant, project, workload and currency, and every figure is a query over that
table. Converting into one currency happens last, per group and currency, as
``archipel ledger show --currency`` does (the catalog's rates, the exact sum
times the rate, rounded half-even to the nano-unit once per group). An entry
counts in the month its ``start`` falls in.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Protocol, cast

import duckdb

from archipel.core import (
    CloudActExposure,
    Concentration,
    InputError,
    Jurisdictions,
    ProviderFacts,
    cross_rate,
)
from archipel.ledger._alerts import budget_alerts, commitment_alerts
from archipel.ledger._budgets import BudgetStatus, status_of
from archipel.ledger._commitments import Burn as LedgerBurn
from archipel.ledger._commitments import burn_down as ledger_burn_down
from archipel.ledger._documents import planned_document
from archipel.ledger._plan import Planned
from archipel.ledger._totals import _rate

_NANO = Decimal(1).scaleb(-9)
#: shares are kept to six decimals (a ten-thousandth of a percent)
_SHARE = Decimal(1).scaleb(-6)
_CUBE = "_archipel_report_cube"

#: jurisdiction groups of a country, in the report's order
EU_EEA, ADEQUACY, US, OTHER, UNKNOWN = "EU/EEA", "adequacy", "US", "other", "unknown"
JURISDICTIONS = (EU_EEA, ADEQUACY, US, OTHER, UNKNOWN)
#: CLOUD Act exposures, in the registry's order, then providers the registry does not know
EXPOSURES = (*(e.value for e in CloudActExposure), UNKNOWN)
#: the exposures counted as exposed to the CLOUD Act
EXPOSED = (CloudActExposure.YES.value, CloudActExposure.VIA_PARENT.value)


class FinOps(Protocol):
    """What the report reads of a FinOps spec (commitments, budgets, concentration, alerts)."""

    @property
    def commitments(self) -> Sequence[Any]: ...

    @property
    def budgets(self) -> Sequence[Any]: ...

    @property
    def concentration(self) -> Concentration | None: ...


#: ``burn_down(connection, spec, *, rates, today)`` as the ledger contract writes it
BurnDown = Callable[..., Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Totals:
    """The whole ledger in the report's currency."""

    spend: Decimal
    gpu_hours: Decimal
    input_tokens: int
    output_tokens: int
    entries: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True, slots=True)
class MonthSpend:
    month: date
    provider: str | None
    spend: Decimal
    gpu_hours: Decimal


@dataclass(frozen=True, slots=True)
class Share:
    """One group's spend and GPU-hours, and their shares of the whole (0 to 1)."""

    name: str
    spend: Decimal
    spend_share: Decimal
    gpu_hours: Decimal
    gpu_share: Decimal
    cap: Decimal | None = None  # providers only: the concentration cap, if the spec has one

    def over_cap(self, measure: str) -> bool:
        """Above its cap on ``measure`` (``spend`` or ``gpu_hours``), as the spec measures it."""
        share = self.spend_share if measure == "spend" else self.gpu_share
        return self.cap is not None and share > self.cap


@dataclass(frozen=True, slots=True)
class Ranked:
    """One workload's or tenant's use."""

    name: str | None
    spend: Decimal
    gpu_hours: Decimal
    input_tokens: int
    output_tokens: int
    entries: int


@dataclass(frozen=True, slots=True)
class Band:
    """A forecast of cumulative spend to the end of the term: mean within [low, high]."""

    months: tuple[date, ...]
    mean: tuple[Decimal, ...]
    low: tuple[Decimal, ...]
    high: tuple[Decimal, ...]
    level: float
    method: str
    at_end: tuple[Decimal, Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class CommitmentFigure:
    """A commitment's burn: cumulative spend per month against the straight line to ``amount``."""

    name: str
    provider: str
    currency: str
    amount: Decimal
    start: date
    end: date
    months: tuple[date, ...]
    spent: tuple[Decimal, ...]  # cumulative, in ``currency``, at the end of each month
    ramp: tuple[tuple[date, Decimal], ...]  # cumulative minimum due by each contract year's end
    expected: Decimal  # where the straight burn line is on the report's day
    forecast: Band | None
    planned: Planned | None = None  # the position if spend follows a fleet plan

    @property
    def spent_to_date(self) -> Decimal:
        return self.spent[-1] if self.spent else Decimal(0)

    @property
    def burned(self) -> Decimal:
        """The share of the amount spent to date (0 to 1, and more when overspent)."""
        return _fraction(self.spent_to_date, self.amount)


@dataclass(frozen=True, slots=True)
class BudgetFigure:
    """A budget over the period (month, quarter or year) that holds the report's day."""

    name: str
    scope: str  # "tenant" or "project"
    subject: str
    currency: str
    amount: Decimal
    period: str
    start: date
    end: date  # exclusive
    spent: Decimal
    used: Decimal  # spent / amount
    projected: Decimal  # spent at the same pace to the period's end
    alert_at: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the FinOps owner should act on (same fields as the ledger's alerts)."""

    kind: str
    subject: str
    message: str
    severity: str  # "info", "warning" or "critical"


@dataclass(frozen=True, slots=True)
class Report:
    currency: str
    today: date
    generated_at: datetime
    totals: Totals
    months: tuple[date, ...]
    by_month: tuple[MonthSpend, ...]
    providers: tuple[Share, ...]
    concentration: Concentration | None
    jurisdictions: tuple[Share, ...]
    cloud_act: tuple[Share, ...]
    workloads: tuple[Ranked, ...]
    tenants: tuple[Ranked, ...]
    commitments: tuple[CommitmentFigure, ...]
    budgets: tuple[BudgetFigure, ...]
    alerts: tuple[Alert, ...]
    forecast_source: str  # where the commitment forecasts come from

    @property
    def exposed(self) -> Share:
        """The spend and GPU-hours with providers exposed to the CLOUD Act."""
        parts = [s for s in self.cloud_act if s.name in EXPOSED]
        return Share(
            "exposed",
            sum((s.spend for s in parts), Decimal(0)),
            sum((s.spend_share for s in parts), Decimal(0)),
            sum((s.gpu_hours for s in parts), Decimal(0)),
            sum((s.gpu_share for s in parts), Decimal(0)),
        )


def rates_into(
    rates: Mapping[str, Decimal], currency: str, where: str = "--currency"
) -> dict[str, Decimal]:
    """The catalog's rates re-expressed into ``currency``, as ``CatalogSnapshot.in_currency``."""
    target = rates.get(currency)
    if target is None:
        known = ", ".join(sorted(rates))
        raise InputError(
            f"{where}: no exchange rate for currency {currency!r}; the catalog knows {known} "
            "(ISO 4217 codes; `archipel catalog refresh` fetches the ECB's rates)"
        )
    if target == 1:
        return dict(rates)
    return {code: cross_rate(rate, target) for code, rate in rates.items()}


def build_report(
    connection: duckdb.DuckDBPyConnection,
    spec: FinOps,
    *,
    currency: str,
    rates: Mapping[str, Decimal],
    jurisdictions: Jurisdictions,
    provider_facts: Callable[[str], ProviderFacts],
    today: date,
    generated_at: datetime,
    top: int = 10,
    burn_down: BurnDown | None = None,
) -> Report:
    """The report's figures over the ``entries`` relation of ``connection``.

    ``rates`` is the catalog's exchange-rate table (one unit of each currency in
    its comparison currency, ``CatalogSnapshot.fx_rates``); ``currency`` is the
    one the report converts into. ``burn_down`` computes each commitment's burn
    and forecast (default: ``archipel.ledger.burn_down``). The cube is a temporary
    table of ``connection``, dropped before returning.
    """
    into = rates_into(rates, currency)
    connection.execute(f"DROP TABLE IF EXISTS {_CUBE}")
    connection.execute(
        # the month as a number per entry (year * 12 + month - 1) costs half of date_trunc;
        # it becomes a date once per group
        f"""CREATE TEMP TABLE {_CUBE} AS
        SELECT make_date((ym // 12)::INTEGER, (ym % 12 + 1)::INTEGER, 1) AS month,
               * EXCLUDE (ym)
        FROM (
            SELECT year("start") * 12 + month("start") - 1 AS ym, provider, country, tenant,
                   project, workload, currency, sum(cost) AS cost, sum(gpu_hours) AS gpu_hours,
                   sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                   count(*) AS entries, min("start") AS first, max("end") AS last
            FROM entries GROUP BY ALL
        )"""
    )
    try:
        return _build(
            connection,
            spec,
            currency,
            rates,
            into,
            jurisdictions,
            provider_facts,
            today,
            generated_at,
            top,
            burn_down,
        )
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {_CUBE}")


def _build(
    con: duckdb.DuckDBPyConnection,
    spec: FinOps,
    currency: str,
    rates: Mapping[str, Decimal],
    into: Mapping[str, Decimal],
    law: Jurisdictions,
    facts: Callable[[str], ProviderFacts],
    today: date,
    generated_at: datetime,
    top: int,
    burn_down: BurnDown | None,
) -> Report:
    money = _Converter(currency, into)
    totals = _totals(con, money)
    by_month = tuple(
        MonthSpend(month, provider, spend, gpu)
        for (month, provider), (spend, gpu, *_) in money.groups(con, ["month", "provider"])
    )
    months = tuple(sorted({m.month for m in by_month}))
    concentration = spec.concentration
    providers = _shares(money.groups(con, ["provider"]), totals)
    if concentration is not None:
        providers = tuple(
            Share(
                s.name,
                s.spend,
                s.spend_share,
                s.gpu_hours,
                s.gpu_share,
                Decimal(str(concentration.share_for(s.name))),
            )
            for s in providers
        )
    jurisdictions = _shares(money.groups(con, [_jurisdiction_sql(law)]), totals, JURISDICTIONS)
    known = [r[0] for r in con.execute(f"SELECT DISTINCT provider FROM {_CUBE}").fetchall()]
    exposures = [_exposure(facts(p)) if p is not None else UNKNOWN for p in known]
    exposure = "coalesce(list_extract($exposures, list_position($providers, provider)), 'unknown')"
    cloud_act = _shares(
        money.groups(con, [exposure], params={"providers": known, "exposures": exposures}),
        totals,
        EXPOSURES,
    )
    workloads = _ranked(money.groups(con, ["workload"]), top)
    tenants = _ranked(money.groups(con, ["tenant"]), top)
    commitments, source, burns = _commitments(con, spec, rates, today, burn_down)
    statuses = [status_of(con, b, rates, today) for b in getattr(spec, "budgets", ()) or ()]
    budgets = tuple(_budget_figure(s) for s in statuses)
    alerts = (
        *_alerts(spec, providers, concentration, commitments),
        *(  # the very alerts `archipel ledger budgets` raises
            Alert(a.kind, a.subject, f"budget {a.subject}: {a.message}", a.severity)
            for a in budget_alerts(statuses)
        ),
    )
    if burns:  # the ledger's burn-downs: the very alerts `archipel ledger commitments` raises
        said = commitment_alerts(burns, spec.alerts)  # type: ignore[attr-defined]
        alerts = (
            *(
                Alert(a.kind, a.subject, f"{a.kind} {a.subject}: {a.message}", a.severity)
                for a in said
            ),
            *(a for a in alerts if a.kind not in ("shortfall", "overrun")),
        )
    return Report(
        currency=currency,
        today=today,
        generated_at=generated_at,
        totals=totals,
        months=months,
        by_month=by_month,
        providers=tuple(sorted(providers, key=lambda s: (-s.spend, -s.gpu_hours, s.name))),
        concentration=concentration,
        jurisdictions=jurisdictions,
        cloud_act=cloud_act,
        workloads=workloads,
        tenants=tenants,
        commitments=commitments,
        budgets=budgets,
        alerts=alerts,
        forecast_source=source,
    )


class _Converter:
    """Sums of the cube per group and currency, each group converted into one currency."""

    def __init__(self, currency: str, rates: Mapping[str, Decimal]) -> None:
        self.currency = currency
        self.rates = rates

    def convert(self, parts: Iterable[tuple[str | None, Decimal]]) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = 80
            exact = sum(
                (
                    cost * _rate(code, self.currency, self.rates, "--currency")
                    for code, cost in parts
                ),
                Decimal(0),
            )
            return exact.quantize(_NANO)

    def groups(
        self,
        con: duckdb.DuckDBPyConnection,
        keys: Sequence[str],
        *,
        where: str = "TRUE",
        params: Mapping[str, Any] | None = None,
    ) -> list[tuple[tuple[Any, ...], tuple[Decimal, Decimal, int, int, int]]]:
        """``[(key, (spend, gpu_hours, input_tokens, output_tokens, entries))]`` per group,
        ordered by key (``None`` last); ``keys`` are SQL expressions over the cube."""
        width = len(keys)
        selected = "".join(f"{k}, " for k in keys)
        rows = con.execute(
            f"""SELECT {selected}currency, sum(cost), coalesce(sum(gpu_hours), 0),
                   coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), sum(entries)
            FROM {_CUBE} WHERE {where} GROUP BY ALL""",
            dict(params or {}),
        ).fetchall()
        grouped: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            grouped.setdefault(tuple(row[:width]), []).append(row[width:])
        out = []
        for key, parts in grouped.items():
            spend = self.convert((p[0], p[1]) for p in parts if p[1] is not None)
            gpu = sum((p[2] for p in parts), Decimal(0))
            out.append(
                (
                    key,
                    (
                        spend,
                        gpu,
                        int(sum(p[3] for p in parts)),
                        int(sum(p[4] for p in parts)),
                        int(sum(p[5] for p in parts)),
                    ),
                )
            )
        out.sort(key=lambda item: tuple((k is None, k or "") for k in item[0]))
        return out


def _totals(con: duckdb.DuckDBPyConnection, money: _Converter) -> Totals:
    groups = money.groups(con, [])
    first, last = con.execute(f"SELECT min(first), max(last) FROM {_CUBE}").fetchone() or (
        None,
        None,
    )
    if not groups:
        return Totals(Decimal(0), Decimal(0), 0, 0, 0, None, None)
    spend, gpu, tin, tout, count = groups[0][1]
    return Totals(spend, gpu, tin, tout, count, first, last)


def _fraction(part: Decimal, whole: Decimal) -> Decimal:
    if not whole:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 80
        return (part / whole).quantize(_SHARE, ROUND_HALF_EVEN)


def _shares(
    groups: Sequence[tuple[tuple[Any, ...], tuple[Decimal, Decimal, int, int, int]]],
    totals: Totals,
    order: Sequence[str] | None = None,
) -> tuple[Share, ...]:
    found = {key[0] if key[0] is not None else UNKNOWN: figures for key, figures in groups}
    names = list(order) if order is not None else sorted(found)
    out = []
    for name in names:
        spend, gpu = found[name][:2] if name in found else (Decimal(0), Decimal(0))
        out.append(
            Share(
                name,
                spend,
                _fraction(spend, totals.spend),
                gpu,
                _fraction(gpu, totals.gpu_hours),
            )
        )
    return tuple(out)


def _ranked(
    groups: Sequence[tuple[tuple[Any, ...], tuple[Decimal, Decimal, int, int, int]]], top: int
) -> tuple[Ranked, ...]:
    rows = [Ranked(key[0], *figures) for key, figures in groups]
    rows.sort(key=lambda r: (-r.spend, -r.gpu_hours, r.name is None, r.name or ""))
    return tuple(rows[:top])


def _jurisdiction_sql(law: Jurisdictions) -> str:
    """SQL naming the jurisdiction group of ``country`` (its lists from the registry)."""

    def listed(codes: Iterable[str]) -> str:
        return "[" + ", ".join(f"'{c}'" for c in sorted(codes) if c.isalpha()) + "]"

    return (
        f"CASE WHEN country IS NULL THEN '{UNKNOWN}' "
        f"WHEN list_contains({listed(law.eu_eea)}, upper(country)) THEN '{EU_EEA}' "
        f"WHEN upper(country) = 'US' THEN '{US}' "
        f"WHEN list_contains({listed(law.adequacy_full)}, upper(country)) THEN '{ADEQUACY}' "
        f"ELSE '{OTHER}' END"
    )


def _exposure(facts: ProviderFacts) -> str:
    return facts.cloud_act.value if facts.cloud_act is not None else UNKNOWN


# --- commitments ---------------------------------------------------------------------------


def _commitments(
    con: duckdb.DuckDBPyConnection,
    spec: FinOps,
    rates: Mapping[str, Decimal],
    today: date,
    burn_down: BurnDown | None,
) -> tuple[tuple[CommitmentFigure, ...], str, list[LedgerBurn]]:
    """The commitments' figures, what computed them, and the ledger's own burn-downs."""
    if not spec.commitments:
        return (), "none", []
    burn_down = burn_down or cast(BurnDown, ledger_burn_down)
    source = "actual spend only (no forecast)" if burn_down is actual_burn_down else "burn_down"
    burns = burn_down(con, spec, rates=rates, today=today)
    figures = tuple(
        _commitment_figure(
            b.commitment,
            tuple(b.months),
            tuple(Decimal(s) for s in b.spent),
            _band(b.forecast),
            today,
            getattr(b, "planned", None),
        )
        for b in burns
    )
    return figures, source, [b for b in burns if isinstance(b, LedgerBurn)]


@dataclass(frozen=True, slots=True)
class ActualBurn:
    """A commitment's burn without a forecast: the contract's ``Burn`` shape."""

    commitment: Any
    currency: str
    months: list[date]
    spent: list[Decimal]
    target: Decimal
    forecast: None = None


def actual_burn_down(
    con: duckdb.DuckDBPyConnection, spec: FinOps, *, rates: Mapping[str, Decimal], today: date
) -> list[ActualBurn]:
    """Each commitment's cumulative spend per month, without a forecast, scope or
    discount: all of its provider's spend. A ``burn_down`` for a report of actuals only
    (the default is :func:`archipel.ledger.burn_down`, with its scope and forecast)."""
    out = []
    for c in spec.commitments:
        months, spent = _actual_burn(con, c, rates, today)
        out.append(ActualBurn(c, c.currency, list(months), list(spent), Decimal(c.amount)))
    return out


def _band(forecast: Any) -> Band | None:
    if forecast is None:
        return None
    at_end = tuple(Decimal(v) for v in forecast.at_end)
    return Band(
        months=tuple(forecast.months),
        mean=tuple(Decimal(v) for v in forecast.mean),
        low=tuple(Decimal(v) for v in forecast.low),
        high=tuple(Decimal(v) for v in forecast.high),
        level=float(forecast.level),
        method=str(forecast.method),
        at_end=(at_end[0], at_end[1], at_end[2]),
    )


def _add_years(day: date, years: int) -> date:
    year = day.year + years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def _commitment_figure(
    c: Any,
    months: tuple[date, ...],
    spent: tuple[Decimal, ...],
    forecast: Band | None,
    today: date,
    planned: Planned | None = None,
) -> CommitmentFigure:
    start, end = c.period.start, c.period.end
    ramp: list[tuple[date, Decimal]] = []
    due = Decimal(0)
    for year, minimum in enumerate(getattr(c, "ramp", None) or (), start=1):
        due += Decimal(minimum)
        ramp.append((min(_add_years(start, year), end), due))
    elapsed = min(max((today - start).days, 0), (end - start).days)
    with localcontext() as ctx:
        ctx.prec = 80
        expected = (Decimal(c.amount) * elapsed / (end - start).days).quantize(_NANO)
    return CommitmentFigure(
        name=getattr(c, "name", None) or c.provider,
        provider=c.provider,
        currency=c.currency,
        amount=Decimal(c.amount),
        start=start,
        end=end,
        months=months,
        spent=spent,
        ramp=tuple(ramp),
        expected=expected,
        forecast=forecast,
        planned=planned,
    )


def _actual_burn(
    con: duckdb.DuckDBPyConnection, c: Any, rates: Mapping[str, Decimal], today: date
) -> tuple[tuple[date, ...], tuple[Decimal, ...]]:
    """Cumulative spend of the commitment's provider per month of its period up to today."""
    money = _Converter(c.currency, rates_into(rates, c.currency, f"commitment {c.provider}"))
    first = c.period.start.replace(day=1)
    last = min(today, c.period.end - timedelta(days=1))
    groups = money.groups(
        con,
        ["month"],
        where="provider = $provider AND month >= $first AND month <= $last",
        params={"provider": c.provider, "first": first, "last": last},
    )
    monthly = {key[0]: figures[0] for key, figures in groups}
    months, spent = [], []
    running = Decimal(0)
    month = first
    while month <= last:
        running += monthly.get(month, Decimal(0))
        months.append(month)
        spent.append(running)
        month = _next_month(month)
    return tuple(months), tuple(spent)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


# --- budgets -------------------------------------------------------------------------------


def _budget_figure(s: BudgetStatus) -> BudgetFigure:
    """A budget's figure from the ledger's own status of it (``archipel ledger budgets``)."""
    b = s.budget
    scope, subject = b.owner
    amount = Decimal(b.amount)
    return BudgetFigure(
        name=b.name,
        scope=scope,
        subject=subject,
        currency=b.currency,
        amount=amount,
        period=b.period,
        start=s.period.start,
        end=s.period.end,
        spent=s.spent,
        used=_fraction(s.spent, amount),
        projected=s.spent if s.forecast is None else s.forecast,
        alert_at=tuple(Decimal(str(a)) for a in b.alert_at),
    )


# --- alerts --------------------------------------------------------------------------------


def _percent(share: Decimal) -> str:
    return f"{share * 100:.1f}%"


def _alerts(
    spec: FinOps,
    providers: Sequence[Share],
    concentration: Concentration | None,
    commitments: Sequence[CommitmentFigure],
) -> tuple[Alert, ...]:
    # The same tolerances as `archipel ledger commitments`; the page words them for its
    # readers, and adds concentration alerts the CLI has no place for.
    tolerances = getattr(spec, "alerts", None)
    shortfall = Decimal(str(getattr(tolerances, "shortfall", "0.05")))
    overrun = Decimal(str(getattr(tolerances, "overrun", "0.05")))
    out: list[Alert] = []
    for c in commitments:
        if c.forecast is None:
            continue
        mean, low, high = c.forecast.at_end
        band = f"{_money(mean)} [{_money(low)}, {_money(high)}] {c.currency}"
        if mean < c.amount * (1 - shortfall):
            severity = "critical" if high < c.amount else "warning"
            out.append(
                Alert(
                    "shortfall",
                    c.name,
                    f"commitment {c.name}: forecast at term end {band}, short of "
                    f"{_money(c.amount)} {c.currency}",
                    severity,
                )
            )
        elif mean > c.amount * (1 + overrun):
            out.append(
                Alert(
                    "overrun",
                    c.name,
                    f"commitment {c.name}: forecast at term end {band}, over "
                    f"{_money(c.amount)} {c.currency}",
                    "warning",
                )
            )
    if concentration is not None:
        measure = concentration.measure
        for s in providers:
            share = s.spend_share if measure == "spend" else s.gpu_share
            if s.cap is not None and s.over_cap(measure):
                what = "spend" if measure == "spend" else "GPU-hours"
                out.append(
                    Alert(
                        "concentration",
                        s.name,
                        f"{s.name} holds {_percent(share)} of {what}, above the cap of "
                        f"{_percent(s.cap)}",
                        "warning",
                    )
                )
    return tuple(out)


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_EVEN):,}"


# --- documents -----------------------------------------------------------------------------


def amount(value: Decimal) -> str:
    """An exact decimal as a string, without trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _share_doc(s: Share, measure: str = "spend") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": s.name,
        "spend": amount(s.spend),
        "spend_share": amount(s.spend_share),
        "gpu_hours": amount(s.gpu_hours),
        "gpu_hours_share": amount(s.gpu_share),
    }
    if s.cap is not None:
        doc["cap"] = amount(s.cap)
        doc["over_cap"] = s.over_cap(measure)
    return doc


def _ranked_doc(r: Ranked) -> dict[str, Any]:
    return {
        "name": r.name,
        "spend": amount(r.spend),
        "gpu_hours": amount(r.gpu_hours),
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "entries": r.entries,
    }


def _commitment_doc(c: CommitmentFigure) -> dict[str, Any]:
    f = c.forecast
    return {
        "name": c.name,
        "provider": c.provider,
        "currency": c.currency,
        "amount": amount(c.amount),
        "start": c.start.isoformat(),
        "end": c.end.isoformat(),
        "spent": amount(c.spent_to_date),
        "expected": amount(c.expected),
        "burned": amount(c.burned),
        "months": [
            {"month": m.isoformat(), "spent": amount(s)}
            for m, s in zip(c.months, c.spent, strict=True)
        ],
        "ramp": [{"by": d.isoformat(), "minimum": amount(v)} for d, v in c.ramp],
        "forecast": None
        if f is None
        else {
            "method": f.method,
            "level": f.level,
            "at_end": {
                "mean": amount(f.at_end[0]),
                "low": amount(f.at_end[1]),
                "high": amount(f.at_end[2]),
            },
            "months": [
                {"month": m.isoformat(), "mean": amount(a), "low": amount(lo), "high": amount(hi)}
                for m, a, lo, hi in zip(f.months, f.mean, f.low, f.high, strict=True)
            ],
        },
        "planned": None if c.planned is None else planned_document(c.planned, path=True),
    }


def _budget_doc(b: BudgetFigure) -> dict[str, Any]:
    return {
        "name": b.name,
        b.scope: b.subject,
        "currency": b.currency,
        "amount": amount(b.amount),
        "period": b.period,
        "start": b.start.isoformat(),
        "end": b.end.isoformat(),
        "spent": amount(b.spent),
        "used": amount(b.used),
        "projected": amount(b.projected),
        "alert_at": [amount(a) for a in b.alert_at],
    }


def report_document(report: Report) -> dict[str, Any]:
    """The report's figures as one JSON-ready document; money as exact decimal strings."""
    t = report.totals
    c = report.concentration
    exposed = report.exposed
    return {
        "currency": report.currency,
        "today": report.today.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "period": {
            "first": None if t.first is None else t.first.isoformat(),
            "last": None if t.last is None else t.last.isoformat(),
        },
        "totals": {
            "spend": amount(t.spend),
            "gpu_hours": amount(t.gpu_hours),
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "entries": t.entries,
        },
        "alerts": [
            {"kind": a.kind, "subject": a.subject, "message": a.message, "severity": a.severity}
            for a in report.alerts
        ],
        "by_month": [
            {
                "month": m.month.isoformat(),
                "provider": m.provider,
                "spend": amount(m.spend),
                "gpu_hours": amount(m.gpu_hours),
            }
            for m in report.by_month
        ],
        "providers": [
            _share_doc(s, c.measure if c is not None else "spend") for s in report.providers
        ],
        "concentration": None
        if c is None
        else {
            "max_share": amount(Decimal(str(c.max_share))),
            "measure": c.measure,
            "providers": {p: amount(Decimal(str(v))) for p, v in sorted(c.providers.items())},
        },
        "jurisdictions": [_share_doc(s) for s in report.jurisdictions],
        "cloud_act": {
            "exposures": [_share_doc(s) for s in report.cloud_act],
            "exposed": _share_doc(exposed),
        },
        "workloads": [_ranked_doc(r) for r in report.workloads],
        "tenants": [_ranked_doc(r) for r in report.tenants],
        "commitments": [_commitment_doc(x) for x in report.commitments],
        "forecast_source": report.forecast_source,
        "budgets": [_budget_doc(b) for b in report.budgets],
    }


def report_tables(report: Report) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The report's tables, one per CSV file: ``{name: (header, rows)}``; money exact."""
    cur = report.currency
    share_header = ("name", f"spend_{cur}", "spend_share", "gpu_hours", "gpu_hours_share")

    def shares(rows: Iterable[Share], cap: bool = False) -> list[tuple[Any, ...]]:
        return [
            (
                s.name,
                amount(s.spend),
                amount(s.spend_share),
                amount(s.gpu_hours),
                amount(s.gpu_share),
            )
            + ((("" if s.cap is None else amount(s.cap)),) if cap else ())
            for s in rows
        ]

    ranked_header = (
        "name",
        f"spend_{cur}",
        "gpu_hours",
        "input_tokens",
        "output_tokens",
        "entries",
    )

    def ranked(rows: Iterable[Ranked]) -> list[tuple[Any, ...]]:
        return [
            (
                r.name or "",
                amount(r.spend),
                amount(r.gpu_hours),
                r.input_tokens,
                r.output_tokens,
                r.entries,
            )
            for r in rows
        ]

    commitments = []
    for c in report.commitments:
        for m, s in zip(c.months, c.spent, strict=True):
            commitments.append(
                (c.name, c.provider, c.currency, m.isoformat(), "actual", amount(s), "", "")
            )
        if c.forecast is not None:
            f = c.forecast
            for m, a, lo, hi in zip(f.months, f.mean, f.low, f.high, strict=True):
                commitments.append(
                    (
                        c.name,
                        c.provider,
                        c.currency,
                        m.isoformat(),
                        "forecast",
                        amount(a),
                        amount(lo),
                        amount(hi),
                    )
                )
    return {
        "by_month": (
            ("month", "provider", f"spend_{cur}", "gpu_hours"),
            [
                (m.month.isoformat(), m.provider or "", amount(m.spend), amount(m.gpu_hours))
                for m in report.by_month
            ],
        ),
        "providers": ((*share_header, "cap"), shares(report.providers, cap=True)),
        "jurisdictions": (share_header, shares(report.jurisdictions)),
        "cloud_act": (share_header, shares(report.cloud_act)),
        "workloads": (ranked_header, ranked(report.workloads)),
        "tenants": (ranked_header, ranked(report.tenants)),
        "commitments": (
            ("commitment", "provider", "currency", "month", "kind", "spent_or_mean", "low", "high"),
            commitments,
        ),
        "budgets": (
            (
                "name",
                "scope",
                "subject",
                "currency",
                "amount",
                "period",
                "start",
                "end",
                "spent",
                "used",
                "projected",
            ),
            [
                (
                    b.name,
                    b.scope,
                    b.subject,
                    b.currency,
                    amount(b.amount),
                    b.period,
                    b.start.isoformat(),
                    b.end.isoformat(),
                    amount(b.spent),
                    amount(b.used),
                    amount(b.projected),
                )
                for b in report.budgets
            ],
        ),
        "alerts": (
            ("kind", "subject", "severity", "message"),
            [(a.kind, a.subject, a.severity, a.message) for a in report.alerts],
        ),
    }
