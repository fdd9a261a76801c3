"""A small realistic ledger for the FOCUS tests: several providers, currencies, tokens, nulls.

Rows are plain tuples in the order of the ``entries`` relation (the ledger
contract), so that fields the :class:`~archipel.ledger.Entry` of this branch
does not carry yet (project, accelerator) are exported too.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from archipel.catalog import load_jurisdictions, load_providers
from archipel.core import Commitment
from archipel.ledger._focus import FocusFacts
from archipel.ledger._frame import ENTRY_COLUMNS, create_entries


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


D = Decimal

#: source, key, start, end, tenant, project, workload, model, accelerator, provider, region,
#: country, data_class, status, gpu_hours, input_tokens, output_tokens, cost, currency
ROWS: list[tuple[Any, ...]] = [
    ("runs", "pretrain-1/2026-01-03/aws", at("2026-01-03T00:00:00"), at("2026-01-04T00:00:00"),
     "research", "frontier", "pretrain-1", None, "H100", "aws", "us-east-1", "US", "public",
     None, D("1536"), 0, 0, D("6144.00"), "USD"),
    ("runs", "finetune-7/2026-02-10/ovhcloud", at("2026-02-10T08:00:00"),
     at("2026-02-10T20:00:00"), "radiology", "imaging", "finetune-7", None, "H200", "ovhcloud",
     "gra", "FR", "health", None, D("96"), 0, 0, D("355.20"), "EUR"),
    ("gateway", "req-7f3a", at("2026-02-11T09:00:00"), at("2026-02-11T09:00:02.500000"),
     "radiology", None, "replica-eu-1", "llama-3.1-70b", None, "scaleway", "fr-par", "FR",
     "health", 200, D("0"), 1200, 350, D("0.000930"), "EUR"),
    ("gateway", "req-8c01", at("2026-02-11T09:00:03"), at("2026-02-11T09:00:03"),
     "acme", None, None, "llama-3.1-70b", None, None, None, None, None,
     503, D("0"), 0, 0, None, None),
    ("runs", "eval-3/2026-03-01/azure", at("2026-03-01T00:00:00"), at("2026-03-02T00:00:00"),
     "research", "frontier", "eval-3", None, "MI300X", "azure", "swedencentral", "SE",
     "internal", None, D("64"), 0, 0, D("512.00"), "USD"),
    ("runs", "sweep-2/2026-03-05/oci", at("2026-03-05T00:00:00"), at("2026-03-05T12:30:00"),
     "research", None, "sweep-2", None, "A100", "oci", "uk-london-1", "GB", "public",
     None, D("12.5"), 0, 0, D("41.25"), "GBP"),
    ("runs", "probe-1/2026-03-06/nebius", at("2026-03-06T00:00:00"), at("2026-03-06T01:00:00"),
     "research", None, "probe-1", None, "GH200", "nebius", "eu-north1", "FI", "public",
     None, D("0.25"), 0, 0, D("0.987654321012345"), "USD"),
]  # fmt: skip

COMMITMENTS = [
    Commitment.model_validate(
        {"provider": "aws", "amount": 3800000, "currency": "USD",
         "period": {"start": date(2025, 11, 1), "end": date(2032, 11, 1)}}
    ),
    Commitment.model_validate(
        {"name": "azure-2026", "provider": "azure", "amount": 250000, "currency": "USD",
         "period": {"start": date(2026, 1, 1), "end": date(2028, 1, 1)},
         "ramp": [D("100000"), D("150000")], "discount": D("0.15")}
    ),
]  # fmt: skip


def ledger_connection(rows: list[tuple[Any, ...]] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding ``entries`` with ``rows`` (default :data:`ROWS`)."""
    con = duckdb.connect()
    create_entries(con)
    marks = ", ".join("?" for _ in ENTRY_COLUMNS)
    chosen = ROWS if rows is None else rows
    if chosen:
        con.executemany(f"INSERT INTO entries VALUES ({marks})", chosen)
    return con


def facts(**overrides: Any) -> FocusFacts:
    """The registry's facts, as the CLI loads them."""
    return FocusFacts(load_providers(), load_jurisdictions(), **overrides)
