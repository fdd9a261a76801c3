"""``archipel ledger commitments|forecast|budgets``: the ledger against a FinOps spec.

Each command reads a FinOps spec (docs/commitments.md; a fleet spec is one
too), the ledger's current entries and the catalog's exchange rates, and
prints where each commitment or budget stands. The exit status is 1 when an
alert is raised (so a scheduled job can page on it), 2 on bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import (
    EXIT_INFEASIBLE,
    AsJson,
    MaxFileSize,
    console,
    exit_with,
    fail,
    guard,
)
from archipel.cli._config import MAX_FILE_MB, read_yaml_documents
from archipel.cli._ledger import Db, ledger_app, open_ledger
from archipel.core import SpecError

if TYPE_CHECKING:
    import duckdb
    from fastapi import FastAPI

    from archipel.core import FinOpsSpec

SpecFile = Annotated[
    Path,
    typer.Argument(
        help="FinOps YAML: commitments, budgets, alert tolerances (a fleet spec is one too)."
    ),
]
Today = Annotated[
    str | None,
    typer.Option(
        "--today",
        metavar="DATE",
        help="Measure as of this day (YYYY-MM-DD; spend before it counts). Default: today (UTC).",
    ),
]
Level = Annotated[
    float,
    typer.Option("--level", help="Coverage of the forecast interval.", min=0.5, max=0.99),
]
PlanFile = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="FILE",
        help="A fleet plan (`archipel fleet plan FLEET.yaml --json`): also show where each "
        "commitment ends if spend follows it from today on.",
    ),
]


def load_finops(path: Path, max_mb: float = MAX_FILE_MB) -> FinOpsSpec:
    """A FinOps spec file: one YAML mapping; a fleet file's planning keys are ignored."""
    from archipel.core import parse_finops

    documents = read_yaml_documents(path, max_mb)
    if len(documents) != 1:
        raise SpecError(
            str(path), ["a FinOps file holds one YAML mapping with commitments and/or budgets"]
        )
    return parse_finops(documents[0], str(path))


def entries_of(url: str | None, *, migrate: bool = True) -> duckdb.DuckDBPyConnection:
    """The ledger's current entries as the ``entries`` relation (``Ledger.frame()``)."""
    from archipel.ledger import Ledger

    ledger = open_ledger(url) if migrate or url is None else Ledger(url)
    try:
        return ledger.frame()
    finally:
        ledger.close()


def mount_finops(app: FastAPI, spec_file: Path, url: str) -> None:
    """Serve ``/v1/ledger/...`` on the control plane's ``app``, for admins, from its database."""
    from fastapi import Depends

    from archipel.cli._common import load_catalog
    from archipel.controlplane._api_deps import may
    from archipel.ledger._api import FinOpsSource, ledger_router

    spec = load_finops(spec_file)
    open_ledger(url).close()  # migrated once, here: the routes only read
    source = FinOpsSource(
        spec=spec,
        rates=load_catalog().fx_rates,
        connect=lambda: entries_of(url, migrate=False),
    )
    app.include_router(ledger_router(source, dependencies=[Depends(may("admin"))]))


def parse_today(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--today {text!r}: not a date; write it as YYYY-MM-DD, e.g. 2026-12-01")


def _rates() -> Mapping[str, Decimal]:
    from archipel.cli._common import load_catalog

    return load_catalog().fx_rates


def _report(
    spec_file: Path,
    db: str | None,
    today: str | None,
    level: float,
    max_mb: float,
    path: bool,
    plan_file: Path | None = None,
) -> dict[str, Any]:
    day = parse_today(today)
    spec = load_finops(spec_file, max_mb)
    from archipel.ledger._plan import read_fleet_plan

    plan = None if plan_file is None else read_fleet_plan(plan_file, int(max_mb * 1024 * 1024))
    rates = _rates()
    from archipel.ledger._documents import finops_report

    connection = entries_of(db)
    try:
        return finops_report(spec, connection, rates, day, level=level, path=path, plan=plan)
    finally:
        connection.close()


@ledger_app.command("commitments")
def commitments(
    spec: SpecFile,
    db: Db = None,
    today: Today = None,
    level: Level = 0.8,
    plan: PlanFile = None,
    as_json: AsJson = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
) -> None:
    """Each commitment burned down to date, its forecast at term end, its ramp; the alerts.

    Exit status 1 when an alert is raised (shortfall, overrun, budget), 2 on bad input.
    """
    doc = guard(lambda: _report(spec, db, today, level, max_file_size, False, plan))
    _show_commitments(doc, as_json, render_commitments)


@ledger_app.command("forecast")
def forecast(
    spec: SpecFile,
    db: Db = None,
    today: Today = None,
    level: Level = 0.8,
    plan: PlanFile = None,
    as_json: AsJson = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
) -> None:
    """Each commitment month by month: spend to date, then the forecast with its interval.

    Exit status 1 when an alert is raised, 2 on bad input.
    """
    doc = guard(lambda: _report(spec, db, today, level, max_file_size, True, plan))
    _show_commitments(doc, as_json, render_forecast)


def _show_commitments(
    doc: dict[str, Any], as_json: bool, render: Callable[[Any, dict[str, Any]], None]
) -> None:
    """Print ``doc`` (as JSON, or drawn by ``render``) with its alerts; exit 1 on any."""
    if as_json:
        typer.echo(json.dumps({k: doc[k] for k in ("today", "commitments", "alerts")}, indent=2))
    else:
        out = console()
        render(out, doc)
        render_alerts(out, doc["alerts"])
    exit_with(EXIT_INFEASIBLE if doc["alerts"] else 0)


@ledger_app.command("budgets")
def budgets(
    spec: SpecFile,
    db: Db = None,
    today: Today = None,
    as_json: AsJson = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
) -> None:
    """Each budget's current month, quarter or year: spent, forecast at its end; the alerts.

    Exit status 1 when a budget alert is raised, 2 on bad input.
    """
    doc = guard(lambda: _report(spec, db, today, 0.8, max_file_size, path=False))
    alerts = [a for a in doc["alerts"] if a["kind"] == "budget"]
    if as_json:
        typer.echo(
            json.dumps(
                {"today": doc["today"], "budgets": doc["budgets"], "alerts": alerts}, indent=2
            )
        )
    else:
        out = console()
        render_budgets(out, doc)
        render_alerts(out, alerts)
    exit_with(EXIT_INFEASIBLE if alerts else 0)


# -- rendering ------------------------------------------------------------------------------


def _money(text: str | None, currency: str) -> str:
    """An amount for display: cents from 1 up, six decimals below (``--json`` is exact)."""
    if text is None:
        return "-"
    value = Decimal(text)
    if abs(value) >= 1 or not value:
        return f"{value:,.2f} {currency}"
    return f"{value.quantize(Decimal('0.000001')).normalize():f} {currency}"


def _percent(text: str) -> str:
    return f"{Decimal(text) * 100:.1f}%"


def render_commitments(out: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    if not doc["commitments"]:
        out.print("The spec has no commitments.")
        return
    table = Table(header_style="bold", title=f"Commitments as of {doc['today']}")
    columns = ["commitment", "ends", "amount", "spent", "burned", "at end", "interval", "ramp"]
    planned = any(c["planned"] is not None for c in doc["commitments"])
    if planned:
        columns.insert(7, "as planned")
    for column in columns:
        table.add_column(column, justify="left" if column in ("commitment", "ramp") else "right")
    for c in doc["commitments"]:
        cur = c["currency"]
        end = c["at_end"]
        f = c["forecast"]
        interval = (
            f"{_money(end['low'], cur)} to {_money(end['high'], cur)} ({f['level']:.0%})"
            if f is not None
            else "term over"
            if c["today"] >= c["period"]["end"]
            else "no whole month yet"
        )
        cells = [
            f"{c['name']} ({c['provider']})",
            c["period"]["end"],
            _money(c["amount"], cur),
            _money(c["spent"], cur),
            _percent(c["burned"]),
            _money(end["mean"], cur),
            interval,
            _ramp_text(c["ramp"], c["today"], cur),
        ]
        if planned:
            p = c["planned"]
            cells.insert(7, "-" if p is None else _money(p["at_end"], cur))
        table.add_row(*cells)
    out.print(table)


def _ramp_text(ramp: list[dict[str, Any]], today: str, currency: str) -> str:
    for y in ramp:
        if y["start"] <= today < y["end"]:
            if y["minimum"] is None:
                return f"year {y['year']}: no minimum"
            return (
                f"year {y['year']}: {y['status']} ({_money(y['spent'], currency)} of "
                f"{_money(y['minimum'], currency)})"
            )
    return "-"


KEYS = ("mean", "low", "high")


def render_forecast(out: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    if not doc["commitments"]:
        out.print("The spec has no commitments.")
        return
    for c in doc["commitments"]:
        cur = c["currency"]
        f = c["forecast"]
        title = f"{c['name']}: {_money(c['amount'], cur)} by {c['period']['end']}"
        table = Table(header_style="bold", title=title)
        p = c["planned"]
        columns = ["month", "spent (cumulative)", "forecast", "low", "high"]
        if p is not None:
            columns.append("as planned")
        for column in columns:
            table.add_column(column, justify="left" if column == "month" else "right")
        tail = [""] if p is not None else []
        for m in c["months"]:
            table.add_row(m["month"][:7], _money(m["spent"], cur), "", "", "", *tail)
        ahead = {m["month"]: m for m in f["months"]} if f is not None else {}
        plan = {m["month"]: m["position"] for m in p["months"]} if p is not None else {}
        for month in sorted(ahead.keys() | plan.keys()):
            row = ahead.get(month)
            table.add_row(
                month[:7],
                "",
                *(("", "", "") if row is None else (_money(row[k], cur) for k in KEYS)),
                *([_money(plan.get(month), cur)] if p is not None else []),
            )
        out.print(table)
        if p is not None:
            out.print(
                f"as planned: fleet plan {p['plan']}, {_money(p['per_day'], cur)} a day from "
                f"{c['today']} on",
                markup=False,
            )
        if f is not None:
            out.print(f"method: {f['method']}; interval: {f['level']:.0%}", markup=False)
        if c["backtest"]:
            scores = ", ".join(f"{s['method']} {s['mape']}%" for s in c["backtest"])
            trend = c["backtest"][0]
            out.print(
                f"back-test on this history ({trend['origins']} origins, position today): "
                f"MAPE {scores}; trend interval held {Decimal(trend['coverage']):.0%}",
                markup=False,
            )


def render_budgets(out: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    if not doc["budgets"]:
        out.print("The spec has no budgets.")
        return
    table = Table(header_style="bold", title=f"Budgets as of {doc['today']}")
    for column in ("budget", "of", "period", "amount", "spent", "used", "forecast at end"):
        table.add_column(
            column, justify="left" if column in ("budget", "of", "period") else "right"
        )
    for b in doc["budgets"]:
        cur = b["currency"]
        owner = f"tenant {b['tenant']}" if "tenant" in b else f"project {b['project']}"
        table.add_row(
            b["name"],
            owner,
            f"{b['period']} from {b['start']}",
            _money(b["amount"], cur),
            _money(b["spent"], cur),
            _percent(b["used"]),
            _money(b["forecast"], cur),
        )
    out.print(table)


def render_alerts(out: Any, alerts: list[dict[str, str]]) -> None:
    if not alerts:
        out.print("No alerts.")
        return
    for a in alerts:
        out.print(f"{a['severity']}: {a['kind']} {a['subject']}: {a['message']}", markup=False)
