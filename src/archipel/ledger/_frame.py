"""The entries as one DuckDB relation: what every reader of the ledger queries.

Chargeback, commitments, forecasts, budgets, the FOCUS export and the report
all read the ledger through a DuckDB connection holding a relation named
``entries`` with the columns of :data:`ENTRY_SCHEMA`: the *current* entries
(no correction supersedes them), wherever they are stored. Money and
quantities are ``DECIMAL(38, 15)`` (exact: 23 digits before the point, the
ledger's 15 after it), times are ``TIMESTAMP`` in UTC. A reader never sees
how entries are stored, so the store can change without them.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from archipel.ledger._entry import Entry

#: DuckDB's exact type for money and quantities (the ledger keeps 15 decimals)
DECIMAL = "DECIMAL(38, 15)"

#: the columns of the ``entries`` relation, in order, with their DuckDB types
ENTRY_SCHEMA: tuple[tuple[str, str], ...] = (
    ("source", "VARCHAR"),
    ("key", "VARCHAR"),
    ("start", "TIMESTAMP"),
    ("end", "TIMESTAMP"),
    ("tenant", "VARCHAR"),
    ("project", "VARCHAR"),
    ("workload", "VARCHAR"),
    ("model", "VARCHAR"),
    ("accelerator", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("region", "VARCHAR"),
    ("country", "VARCHAR"),
    ("data_class", "VARCHAR"),
    ("status", "INTEGER"),
    ("gpu_hours", DECIMAL),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cost", DECIMAL),
    ("currency", "VARCHAR"),
)

ENTRY_COLUMNS = tuple(name for name, _ in ENTRY_SCHEMA)

#: true for an entry priced by Archipel at list (the catalog's or a site's price: the
#: gateway's and the control plane's entries, and native entry files); false for a row a
#: provider billed (a FOCUS or CUR import), whose cost is already net of its discounts,
#: so that a commitment's ``discount`` is never taken twice
LIST_PRICED = "NOT (source LIKE 'focus:%' OR source = 'cur')"


def create_entries(connection: duckdb.DuckDBPyConnection, name: str = "entries") -> None:
    """Create an empty table ``name`` with the columns of :data:`ENTRY_SCHEMA`."""
    columns = ", ".join(f'"{column}" {kind}' for column, kind in ENTRY_SCHEMA)
    connection.execute(f'CREATE TABLE "{name}" ({columns})')


def entry_row(entry: Entry) -> tuple[Any, ...]:
    """An entry as the values of :data:`ENTRY_COLUMNS` (times naive UTC, exact decimals)."""
    cost = entry.cost
    return (
        entry.source,
        entry.key,
        entry.start.replace(tzinfo=None),
        entry.end.replace(tzinfo=None),
        entry.tenant,
        entry.project,
        entry.workload,
        entry.model,
        entry.accelerator,
        entry.provider,
        entry.region,
        entry.country,
        entry.data_class,
        entry.status,
        entry.gpu_hours,
        entry.input_tokens,
        entry.output_tokens,
        None if cost is None else cost.amount,
        None if cost is None else cost.currency,
    )


def insert_entries(
    connection: duckdb.DuckDBPyConnection, entries: Iterable[Entry], name: str = "entries"
) -> None:
    """Append ``entries`` to the table ``name`` (made by :func:`create_entries`) through a
    temporary CSV file that DuckDB reads with the exact column types: its ``executemany``
    takes minutes for what this takes seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "entries.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([_cell(v) for v in entry_row(e)] for e in entries)
        columns = ", ".join(f"'{column}': '{kind}'" for column, kind in ENTRY_SCHEMA)
        quoted = str(path).replace("'", "''")
        connection.execute(
            f"INSERT INTO \"{name}\" SELECT * FROM read_csv('{quoted}', header = false, "
            f"columns = {{{columns}}}, nullstr = '{_NULL}', quote = '\"', escape = '\"', "
            "auto_detect = false)"
        )


#: how a missing value is written in the temporary CSV file (a ledger value never is this)
_NULL = "\\N"


def _cell(value: object) -> object:
    if value is None:
        return _NULL
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, Decimal):
        return format(value, "f")
    return value
