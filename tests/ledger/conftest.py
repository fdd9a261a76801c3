"""Fixtures for the ledger: a ledger on SQLite or on a fresh PostgreSQL database, usage lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.postgres import fresh_database

from archipel.ledger import Ledger


def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    yield from fresh_database("archipel_ledger")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A migrated, empty ledger on each database the ledger supports."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'ledger.db'}"])
    else:
        urls = postgres_url()
    for url in urls:
        opened = Ledger(url)
        opened.migrate()
        yield opened
        opened.close()


def usage(request_id: str, **fields: Any) -> dict[str, Any]:
    """One usage record as the gateway writes it; ``fields`` override the defaults."""
    doc: dict[str, Any] = {
        "ts": 1764547200.25,
        "request_id": request_id,
        "tenant": "acme",
        "data_class": "public",
        "model": "llama-3-70b",
        "status": 200,
        "replica": "llama-3-70b/paris",
        "provider": "scaleway",
        "region": "fr-par",
        "input_tokens": 100,
        "output_tokens": 20,
        "tokens_counted": False,
        "latency_ms": 250.0,
        "attempts": 1,
        "cost": "0.0001",
        "currency": "EUR",
        "stream": False,
    }
    doc.update(fields)
    return doc


def write_usage(path: Path, *lines: dict[str, Any] | str) -> Path:
    """A usage file: a dict is written as the gateway writes a record, a str as it is."""
    text = "".join(
        (line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))) + "\n"
        for line in lines
    )
    path.write_text(text)
    return path


COUNTRIES = {("scaleway", "fr-par"): "FR", ("aws", "us-east-1"): "US"}
