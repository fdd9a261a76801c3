"""``archipel report``: the ledger as one HTML page, a JSON document or CSV tables."""

from __future__ import annotations

import csv
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import AsJson, guard
from archipel.cli._config import MAX_FILE_MB
from archipel.cli._ledger import Db, open_ledger
from archipel.cli._ledger_commitments import load_finops
from archipel.core import FinOpsSpec, InputError, parse_finops

if TYPE_CHECKING:
    import duckdb

    from archipel.core import CatalogSnapshot
    from archipel.ledger import Report

SpecFile = Annotated[
    Path | None,
    typer.Argument(
        metavar="SPEC",
        help="FinOps spec YAML: commitments, budgets, concentration (a fleet spec is one too).",
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write the HTML report here (default: report.html, unless --json or --csv).",
    ),
]
CsvDir = Annotated[
    Path | None,
    typer.Option("--csv", metavar="DIR", help="Write one CSV file per table into DIR."),
]
ReportCurrency = Annotated[
    str | None,
    typer.Option(
        "--currency",
        metavar="CODE",
        help="Convert all money into this currency at the catalog's rates (default: the "
        "spec's `currency`, else the catalog's).",
    ),
]
Today = Annotated[
    str | None,
    typer.Option(
        "--today",
        metavar="DATE",
        help="Report as of this day, YYYY-MM-DD (default: today, UTC): budgets and forecasts.",
    ),
]
Top = Annotated[
    int, typer.Option("--top", metavar="N", help="How many workloads and tenants to rank.", min=1)
]


PlanFile = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="FILE",
        help="A fleet plan (`archipel fleet plan FLEET.yaml --json`): draw where each "
        "commitment ends if spend follows it from the report's day on.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``archipel report`` to the ``archipel`` app."""
    app.command("report")(report)


def report(
    spec: SpecFile = None,
    db: Db = None,
    output: Output = None,
    as_json: AsJson = False,
    csv_dir: CsvDir = None,
    currency: ReportCurrency = None,
    today: Today = None,
    top: Top = 10,
    plan: PlanFile = None,
) -> None:
    """Report spend by provider and month against commitments, concentration, jurisdiction.

    One self-contained HTML file (opens offline, loads nothing), or with --json
    one document of the same figures (money as exact decimal strings), or with
    --csv one CSV per table. Exit status 2 on bad input.
    """
    day = _today(today)
    html_path = output if output is not None or as_json or csv_dir else Path("report.html")
    doc = guard(lambda: _report(spec, db, currency, day, top, html_path, csv_dir, plan))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        written = [str(p) for p in (html_path, csv_dir) if p is not None]
        typer.echo(f"wrote {' and '.join(written)}", err=True)


def _today(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: write YYYY-MM-DD") from None


def report_figures(
    spec: FinOpsSpec,
    connect: Callable[[], duckdb.DuckDBPyConnection],
    snapshot: CatalogSnapshot,
    *,
    today: date,
    currency: str | None = None,
    top: int = 10,
    plan: Any = None,
) -> Report:
    """``archipel report``'s figures over the entries ``connect()`` opens, as of ``today``:
    the one function the command and the console's spend view (``archipel server``) call.

    Money goes into ``currency``, else the spec's, else the catalog's comparison currency;
    ``plan`` (a fleet plan) draws each commitment's position if spend follows it.
    """
    from archipel.ledger import burn_down
    from archipel.ledger._report import build_report

    code = (currency or spec.currency or snapshot.comparison_currency).strip().upper()
    connection = connect()
    with connection:
        return build_report(
            connection,
            spec,
            currency=code,
            rates=snapshot.fx_rates,
            jurisdictions=snapshot.jurisdictions,
            provider_facts=snapshot.provider,
            today=today,
            generated_at=datetime.now(UTC),
            top=top,
            burn_down=None if plan is None else functools.partial(burn_down, plan=plan),
        )


def _report(
    spec_path: Path | None,
    db: str | None,
    currency: str | None,
    today: date,
    top: int,
    html_path: Path | None,
    csv_dir: Path | None,
    plan_path: Path | None = None,
) -> dict[str, Any]:
    from archipel.cli._common import load_catalog
    from archipel.ledger._plan import read_fleet_plan
    from archipel.ledger._report import report_document, report_tables

    spec = load_finops(spec_path) if spec_path is not None else parse_finops({}, "<none>")
    plan = None
    if plan_path is not None:
        plan = read_fleet_plan(plan_path, int(MAX_FILE_MB * 1024 * 1024))
    figures = report_figures(
        spec,
        lambda: _entries(db),
        load_catalog(),
        today=today,
        currency=currency,
        top=top,
        plan=plan,
    )
    if html_path is not None:
        from archipel.ledger._report_html import render_html

        page = render_html(figures)
        with atomic(html_path) as out:
            out.write_text(page, encoding="utf-8")
    if csv_dir is not None:
        _write_csv(csv_dir, report_tables(figures))
    return report_document(figures)


def _entries(db: str | None) -> duckdb.DuckDBPyConnection:
    ledger = open_ledger(db)
    try:
        return ledger.frame()
    finally:
        ledger.close()


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` that replaces it only when fully written."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"-o {path}: no such directory {folder}")
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_csv(
    folder: Path, tables: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
) -> None:
    """Every table into ``folder``, all written or none replaced."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--csv {folder}: not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".report-"))
    try:
        for name, (header, rows) in tables.items():
            with (staging / f"{name}.csv").open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(header)
                writer.writerows(rows)
        for name in tables:
            os.replace(staging / f"{name}.csv", folder / f"{name}.csv")
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
