"""``archipel ledger export --focus`` and the provider cost files of ``ledger ingest``.

The FOCUS export writes the ledger's current entries and a FinOps spec's
commitments as FOCUS 1.3 files (docs/focus.md); ``ledger ingest --focus FILE``
and ``--cur FILE`` read a provider's cost file into the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import AsJson, PolicyFile, guard
from archipel.core import InputError

if TYPE_CHECKING:
    from archipel.ledger import IngestReport
    from archipel.ledger._focus import Exported

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL of the ledger (default: the control plane's SQLite file).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``archipel ledger``."""
    app.command("export")(export)


def export(
    focus: Annotated[
        Path,
        typer.Option("--focus", metavar="OUT_DIR", help="Write the FOCUS 1.3 files here."),
    ],
    spec: Annotated[
        Path | None,
        typer.Argument(
            metavar="[SPEC]",
            help="FinOps or fleet spec whose `commitments` become the Contract Commitment "
            "dataset (and whose `currency` bills unpriced entries).",
        ),
    ] = None,
    db: Db = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="csv|parquet|both", help="Which files to write.")
    ] = "both",
    policy: PolicyFile = None,
    account: Annotated[
        str,
        typer.Option("--account", metavar="NAME", help="BillingAccountId of every row."),
    ] = "archipel",
    as_json: AsJson = False,
) -> None:
    """Export the ledger as FOCUS 1.3: Cost and Usage, and Contract Commitment (docs/focus.md)."""
    done = guard(lambda: _export(focus, spec, db, fmt, policy, account))
    if as_json:
        typer.echo(json.dumps(export_document(done), indent=2))
        return
    typer.echo(
        f"{done.cost_and_usage_rows:,} cost and usage rows, "
        f"{done.contract_commitment_rows:,} contract commitment rows:"
    )
    for path in done.files:
        typer.echo(f"  {path}")


def export_document(done: Exported) -> dict[str, Any]:
    return {
        "focus_version": "1.3",
        "files": [str(p) for p in done.files],
        "cost_and_usage_rows": done.cost_and_usage_rows,
        "contract_commitment_rows": done.contract_commitment_rows,
    }


def _export(
    out: Path, spec: Path | None, db: str | None, fmt: str, policy: Path | None, account: str
) -> Exported:
    from archipel.catalog import load_jurisdictions, load_providers
    from archipel.cli._config import read_text
    from archipel.ledger._focus import FocusFacts, Format, export_focus, policy_version

    try:
        chosen = Format(fmt.strip().lower())
    except ValueError:
        raise InputError(f"--format {fmt!r}: choose csv, parquet or both") from None
    if out.exists() and not out.is_dir():
        raise InputError(f"--focus {out}: exists and is not a directory")
    from archipel.cli._ledger_commitments import entries_of, load_finops

    finops = None if spec is None else load_finops(spec)
    commitments = [] if finops is None else list(finops.commitments)
    currency = None if finops is None else finops.currency
    version = None if policy is None else policy_version(read_text(policy).encode())
    facts = FocusFacts(
        load_providers(),
        load_jurisdictions(),
        account=account,
        policy_version=version,
        currency=currency or "USD",
    )
    connection = entries_of(db)
    try:
        return export_focus(connection, out, facts, commitments, fmt=chosen)
    finally:
        connection.close()


def ingest_cost_file(
    path: Path, kind: str, db: str | None, strict: bool, quiet: bool
) -> IngestReport:
    """``archipel ledger ingest --focus FILE`` / ``--cur FILE``: add a provider's cost file."""
    from archipel.catalog import load_providers, load_regions
    from archipel.cli._ledger import open_ledger
    from archipel.cli._progress import progress
    from archipel.ledger._focus_import import CostFile, Kind, ingest_cost_file

    flag = f"--{kind}"
    if not path.is_file():
        raise InputError(f"{flag} {path}: no such file")
    known = {facts.name.lower(): facts.id for facts in load_providers().values()}
    ledger = open_ledger(db)
    try:
        with progress(f"ingesting {path.name}", quiet=quiet, after=0.5) as bar:

            def advance(rows: int) -> None:
                bar.update(description=f"ingesting {path.name}: {rows:,} rows")

            return ingest_cost_file(
                ledger,
                CostFile(path, Kind(kind)),
                load_regions(),
                known=known,
                strict=strict,
                on_progress=advance,
            )
    finally:
        ledger.close()
