"""``archipel ledger``: ingest usage into the ledger, and show chargeback from it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import EXIT_INFEASIBLE, AsJson, console, exit_with, fail, guard
from archipel.cli._config import data_dir, default_db_url

if TYPE_CHECKING:
    from archipel.ledger import ColumnarReport, Converted, IngestReport, Ledger, Total

ledger_app = typer.Typer(
    help="Meter what was spent: ingest usage, show chargeback (docs/ledger.md).",
    no_args_is_help=True,
)

#: problems printed one a line before the rest are only counted
SHOWN_PROBLEMS = 20

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL of the ledger (default: the control plane's SQLite file in the "
        "data directory), e.g. postgresql+psycopg://user@host/db.",
    ),
]
By = Annotated[
    str,
    typer.Option(
        "--by",
        metavar="tenant|provider|model|data-class|country",
        help="Sum per this (also: workload, region, source).",
    ),
]
ShowCurrency = Annotated[
    str | None,
    typer.Option(
        "--currency",
        metavar="CODE",
        help="Convert every group's spend into this currency (ISO 4217) at the catalog's "
        "rates, as `archipel plan --currency` does (default: each entry's own currency).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``archipel ledger`` to the ``archipel`` app."""
    from archipel.cli import (
        _ledger_commitments,  # noqa: F401  (its commands join ledger_app)
        _ledger_export,
    )

    _ledger_export.register(ledger_app)
    app.add_typer(ledger_app, name="ledger")


Store = Annotated[
    Path | None,
    typer.Option(
        "--store",
        metavar="DIR",
        envvar="ARCHIPEL_LEDGER_DIR",
        help="Folder of the ledger's Parquet partitions (default: ledger/ beside a SQLite "
        "file; required with another database, then recorded in it at first use).",
    ),
]


def open_ledger(db: str | None, store: Path | None = None) -> Ledger:
    from archipel.ledger import Ledger

    if db is None:
        home = data_dir()
        home.mkdir(parents=True, exist_ok=True)
        db = default_db_url()
    ledger = Ledger(db, store=store)
    ledger.migrate()
    return ledger


@ledger_app.command("ingest")
def ingest(
    usage: Annotated[
        Path | None,
        typer.Option("--usage", metavar="FILE", help="The gateway's usage log (JSON lines)."),
    ] = None,
    entries: Annotated[
        Path | None,
        typer.Option(
            "--entries",
            metavar="FILE",
            help="Entries in the ledger's own format (.jsonl or .jsonl.gz; docs/ledger.md).",
        ),
    ] = None,
    db: Db = None,
    store: Store = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse the whole file at its first malformed line."),
    ] = False,
    whole: Annotated[
        bool,
        typer.Option(
            "--whole", help="Read the file from its start, even the part an ingest already read."
        ),
    ] = False,
    as_json: AsJson = False,
    focus: Annotated[
        Path | None,
        typer.Option("--focus", metavar="FILE", help="A FOCUS 1.0-1.3 cost file (CSV/Parquet)."),
    ] = None,
    cur: Annotated[
        Path | None,
        typer.Option("--cur", metavar="FILE", help="An AWS CUR 2.0 cost file (CSV/Parquet)."),
    ] = None,
) -> None:
    """Add a gateway usage log, an entries file (or a provider's FOCUS or CUR cost file,
    docs/focus.md) to the ledger; ingesting it again adds nothing.

    A file ingested before is read on from where that ingest stopped (a log
    that grew); a file rewritten since is read whole. A malformed line is
    reported (file:line: what is wrong) and skipped, and the command then exits
    with status 1; with --strict it refuses the file (status 2).
    """
    files = (("usage", usage), ("entries", entries), ("focus", focus), ("cur", cur))
    given = [(f, p) for f, p in files if p]
    if len(given) != 1:
        fail("give one file to ingest: --usage FILE, --entries FILE, --focus FILE or --cur FILE")
    kind, path = given[0]
    report: Any
    if kind in ("usage", "entries"):
        report = guard(lambda: _ingest(path, kind, db, store, strict, whole, as_json))
    else:
        from archipel.cli._ledger_export import ingest_cost_file

        report = guard(lambda: ingest_cost_file(path, kind, db, strict, as_json))
    if as_json:
        typer.echo(json.dumps(ingest_document(report), indent=2))
    else:
        _print_ingest(report)
    exit_with(EXIT_INFEASIBLE if report.problems else 0)


def _ingest(
    path: Path, fmt: str, db: str | None, store: Path | None, strict: bool, whole: bool,
    quiet: bool,
) -> ColumnarReport:  # fmt: skip
    from archipel.catalog import load_regions
    from archipel.cli._progress import progress
    from archipel.ledger import ingest_columnar

    option = f"--{fmt}"
    if not path.is_file():
        hint = "give the gateway's metering.path" if fmt == "usage" else "give an entries file"
        fail(f"{option} {path}: no such file ({hint})")
    ledger = open_ledger(db, store)
    try:
        size = path.stat().st_size
        with progress(f"ingesting {path.name}", total=size, quiet=quiet, after=0.5) as bar:
            seen = [0]

            def advance(done: int) -> None:
                bar.update(advance=done - seen[0])
                seen[0] = done

            countries = load_regions() if fmt == "usage" else {}
            return ingest_columnar(
                ledger,
                path,
                countries,
                fmt="usage" if fmt == "usage" else "entries",
                strict=strict,
                whole=whole,
                on_progress=advance,
            )
    finally:
        ledger.close()


def ingest_document(report: IngestReport | ColumnarReport) -> dict[str, Any]:
    return {
        "path": report.path,
        "lines": report.lines,
        "from_byte": getattr(report, "start_offset", 0),
        "new": report.added.new,
        "corrections": report.added.corrections,
        "duplicates": report.added.duplicates,
        "malformed": [{"line": p.line, "message": p.message} for p in report.problems],
    }


def _print_ingest(report: IngestReport | ColumnarReport) -> None:
    a = report.added
    corrections = "correction" if a.corrections == 1 else "corrections"
    offset = getattr(report, "start_offset", 0)  # a cost file is read whole
    start = f" from byte {offset:,}" if offset else ""
    typer.echo(
        f"{report.path}: {report.lines:,} lines{start}: {a.new:,} new, "
        f"{a.corrections:,} {corrections}, {a.duplicates:,} already in the ledger, "
        f"{len(report.problems):,} malformed"
    )
    for problem in report.problems[:SHOWN_PROBLEMS]:
        typer.echo(f"skipped {problem}", err=True)
    if len(report.problems) > SHOWN_PROBLEMS:
        typer.echo(f"... and {len(report.problems) - SHOWN_PROBLEMS:,} more", err=True)


@ledger_app.command("show")
def show(
    by: By = "tenant",
    currency: ShowCurrency = None,
    db: Db = None,
    store: Store = None,
    as_json: AsJson = False,
) -> None:
    """Chargeback: the spend, tokens and GPU-hours of the current entries per group.

    Sums are exact; without --currency each group has one line per currency.
    """
    dimension = _dimension(by)
    doc = guard(lambda: _show(dimension, currency, db, store))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    render_chargeback(console(), doc)


def _dimension(text: str) -> Any:
    from archipel.ledger import Dimension

    try:
        return Dimension(text.strip().lower())
    except ValueError:
        known = ", ".join(d.value for d in Dimension)
        fail(f"--by {text!r}: choose one of {known}")


def _show(
    dimension: Any, currency: str | None, db: str | None, store: Path | None
) -> dict[str, Any]:
    from archipel.ledger import converted, totals

    ledger = open_ledger(db, store)
    try:
        parts = totals(ledger, dimension)
    finally:
        ledger.close()
    if currency is None:
        return {"by": dimension.value, "currency": None, "groups": [_total(t) for t in parts]}
    from archipel.cli._common import load_catalog

    code = currency.strip().upper()
    rates = load_catalog().in_currency(code, "--currency").fx_rates
    groups = converted(parts, code, rates)
    return {"by": dimension.value, "currency": code, "groups": [_converted(g) for g in groups]}


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f")  # exact, without trailing zeros


def _total(t: Total) -> dict[str, Any]:
    return {
        "group": t.group,
        "cost": _amount(t.cost),
        "currency": t.currency,
        "entries": t.entries,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "gpu_hours": _amount(t.gpu_hours),
    }


def _converted(g: Converted) -> dict[str, Any]:
    return {
        "group": g.group,
        "cost": _amount(g.cost.amount),
        "currency": g.cost.currency,
        "entries": sum(p.entries for p in g.parts),
        "input_tokens": sum(p.input_tokens for p in g.parts),
        "output_tokens": sum(p.output_tokens for p in g.parts),
        "gpu_hours": _amount(sum((p.gpu_hours for p in g.parts), Decimal(0))),
        "from": [{"cost": _amount(p.cost), "currency": p.currency} for p in g.parts if p.currency],
    }


def render_chargeback(out: Any, doc: dict[str, Any]) -> None:
    """The chargeback document as a table; amounts exactly as summed, never rounded."""
    from rich.table import Table

    if not doc["groups"]:
        out.print("The ledger has no entries yet: `archipel ledger ingest --usage FILE`.")
        return
    table = Table(header_style="bold")
    table.add_column(doc["by"])
    table.add_column("cost", justify="right")
    if doc["currency"] is not None:
        table.add_column("from", justify="right")
    for column in ("entries", "input tokens", "output tokens", "GPU-hours"):
        table.add_column(column, justify="right")
    for g in doc["groups"]:
        cost = f"{g['cost']} {g['currency']}" if g["currency"] else "0"
        row = [g["group"] if g["group"] is not None else "-", cost]
        if doc["currency"] is not None:
            row.append(" + ".join(f"{p['cost']} {p['currency']}" for p in g["from"]) or "-")
        row += [f"{g['entries']:,}", f"{g['input_tokens']:,}", f"{g['output_tokens']:,}"]
        row.append(g["gpu_hours"])
        table.add_row(*row)
    out.print(table)
