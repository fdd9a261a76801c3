"""``archipel ledger export --focus`` and the provider cost files of ``ledger ingest``.

The FOCUS export writes the ledger's current entries and a FinOps spec's
commitments as FOCUS 1.3 files (docs/focus.md); ``ledger ingest --focus FILE``
and ``--cur FILE`` read a provider's cost file into the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import AsJson, PolicyFile, guard
from archipel.core import InputError

if TYPE_CHECKING:
    import duckdb

    from archipel.core import Commitment
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
    commitments, currency = spec_commitments(spec) if spec is not None else ([], None)
    version = None if policy is None else policy_version(read_text(policy).encode())
    facts = FocusFacts(
        load_providers(),
        load_jurisdictions(),
        account=account,
        policy_version=version,
        currency=currency or "USD",
    )
    connection = ledger_frame(db)
    try:
        return export_focus(connection, out, facts, commitments, fmt=chosen)
    finally:
        connection.close()


def ledger_frame(db: str | None) -> duckdb.DuckDBPyConnection:
    """The ledger's current entries as the ``entries`` relation of a DuckDB connection.

    To be replaced by ``Ledger.frame()`` once the columnar store provides it:
    this reads every current entry through Python, which is fine for an export
    but not for the analytic queries the store is built for.
    """
    import duckdb

    from archipel.cli._ledger import open_ledger
    from archipel.ledger._frame import create_entries, insert_entries

    ledger = open_ledger(db)
    connection = duckdb.connect()
    try:
        create_entries(connection)
        batch = []
        for entry in ledger.current():
            batch.append(entry)
            if len(batch) >= 10_000:
                insert_entries(connection, batch)
                batch = []
        insert_entries(connection, batch)
    finally:
        ledger.close()
    return connection


def spec_commitments(path: Path) -> tuple[list[Commitment], str | None]:
    """The ``commitments`` (and ``currency``) of a FinOps or fleet spec."""
    from pydantic import ValidationError

    from archipel.cli._config import read_yaml_documents
    from archipel.core import Commitment

    documents = read_yaml_documents(path)
    if len(documents) != 1 or not isinstance(documents[0], Mapping):
        raise InputError(f"{path}: a FinOps spec is one YAML mapping (with `commitments:`)")
    doc = documents[0]
    items = doc.get("commitments") or []
    if not isinstance(items, list):
        raise InputError(f"{path}: commitments: must be a list")
    known = set(Commitment.model_fields)
    commitments: list[Commitment] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InputError(f"{path}: commitments[{i}]: must be a mapping")
        # fields this version of Commitment does not have yet (name, ramp, burns,
        # discount) are read past, so that newer specs still export
        fields = {k: v for k, v in item.items() if k in known}
        try:
            commitments.append(Commitment.model_validate(fields))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path}: commitments[{i}].{where}: {first['msg']}") from None
    currency = doc.get("currency")
    return commitments, None if currency is None else str(currency).upper()


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
