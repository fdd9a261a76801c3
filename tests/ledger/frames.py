"""An ``entries`` relation for the readers' tests, built from a few rows written by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from archipel.ledger._frame import ENTRY_COLUMNS, create_entries

DEFAULTS: dict[str, Any] = {
    "source": "runs",
    "tenant": "research",
    "project": None,
    "workload": "pretrain-1",
    "model": None,
    "accelerator": "H100",
    "provider": "aws",
    "region": "us-east-1",
    "country": "US",
    "data_class": "public",
    "status": None,
    "gpu_hours": "1",
    "input_tokens": 0,
    "output_tokens": 0,
    "currency": "USD",
}


def frame(*rows: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A connection whose ``entries`` hold ``rows``: each needs ``start`` (ISO text) and ``cost``."""
    connection = duckdb.connect()
    create_entries(connection)
    add(connection, *rows)
    return connection


def add(connection: duckdb.DuckDBPyConnection, *rows: dict[str, Any]) -> None:
    for n, row in enumerate(rows):
        values = {**DEFAULTS, **row}
        start = datetime.fromisoformat(values["start"])
        values.setdefault("end", (start + timedelta(hours=1)).isoformat())
        values.setdefault("key", f"k{n}-{values['start']}-{values.get('cost')}")
        marks = ", ".join("?" for _ in ENTRY_COLUMNS)
        names = ", ".join(f'"{c}"' for c in ENTRY_COLUMNS)
        connection.execute(
            f"INSERT INTO entries ({names}) VALUES ({marks})",
            [values.get(c) for c in ENTRY_COLUMNS],
        )
