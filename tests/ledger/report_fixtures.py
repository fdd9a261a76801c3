"""A small ledger whose report figures are worked out by hand (see test_report.py).

Rates: the catalog's table in USD, 1 EUR = 1.10 USD. Law: EU = FR, DE; EEA adds NO;
adequacy (full) = CH, JP; the US is under the partial decision. Providers: aws and
azure are CLOUD Act-exposed (yes), scaleway and ovhcloud are not (no), nimbus is
not in the registry (unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from archipel.core import CloudActExposure, Concentration, Jurisdictions, ProviderFacts
from archipel.ledger._frame import ENTRY_COLUMNS, create_entries

RATES = {"USD": Decimal(1), "EUR": Decimal("1.10")}
LAW = Jurisdictions(
    eu=frozenset({"FR", "DE"}),
    eea_non_eu=frozenset({"NO"}),
    adequacy_full=frozenset({"CH", "JP"}),
    adequacy_partial=frozenset({"US"}),
)
EXPOSURE = {
    "aws": CloudActExposure.YES,
    "azure": CloudActExposure.YES,
    "scaleway": CloudActExposure.NO,
    "ovhcloud": CloudActExposure.NO,
}


def facts(provider: str) -> ProviderFacts:
    exposure = EXPOSURE.get(provider)
    if exposure is None:
        return ProviderFacts(id=provider, name=provider, registered=False)
    return ProviderFacts(id=provider, name=provider, cloud_act=exposure)


#: (provider, country, tenant, project, workload, start, gpu_hours, tokens in/out, cost, currency)
ROWS: list[tuple[Any, ...]] = [
    ("aws", "US", "research", "frontier", "pretrain", "2026-01-10", 100, 0, 0, "400.00", "USD"),
    ("aws", "US", "research", "frontier", "pretrain", "2026-02-10", 100, 0, 0, "400.00", "USD"),
    ("scaleway", "FR", "radiology", "scans", "finetune", "2026-01-15", 50, 0, 0, "100.00", "EUR"),
    ("ovhcloud", "DE", "radiology", "scans", "serve", "2026-02-20", 30, 1000, 500, "60", "EUR"),
    ("nimbus", "CH", "marketing", "ads", "chat", "2026-02-01", 20, 0, 0, "24.00", "USD"),
    ("azure", "JP", "marketing", "ads", "chat", "2026-03-01", 0, 10, 0, None, None),
    ("azure", "BR", "research", "frontier", "pretrain", "2026-03-05", 100, 0, 0, "300", "USD"),
]


def ledger_frame(rows: Sequence[tuple[Any, ...]] = ROWS) -> duckdb.DuckDBPyConnection:
    """A connection holding ``entries`` with ``rows`` (each one hour long)."""
    con = duckdb.connect()
    create_entries(con)
    for n, row in enumerate(rows):
        provider, country, tenant, project, workload, start, gpu, tin, tout, cost, cur = row
        begin = datetime.fromisoformat(start)
        values = {
            "source": "runs",
            "key": f"k{n}",
            "start": begin,
            "end": begin.replace(hour=1),
            "tenant": tenant,
            "project": project,
            "workload": workload,
            "model": None,
            "accelerator": "H100",
            "provider": provider,
            "region": None,
            "country": country,
            "data_class": "public",
            "status": None,
            "gpu_hours": Decimal(gpu),
            "input_tokens": tin,
            "output_tokens": tout,
            "cost": None if cost is None else Decimal(cost),
            "currency": cur,
        }
        marks = ", ".join("?" for _ in ENTRY_COLUMNS)
        con.execute(f"INSERT INTO entries VALUES ({marks})", [values[c] for c in ENTRY_COLUMNS])
    return con


@dataclass(frozen=True)
class Period:
    start: date
    end: date


@dataclass(frozen=True)
class Commitment:
    """The shape of core.Commitment the report reads (with the ledger's name and ramp)."""

    provider: str
    amount: Decimal
    currency: str
    period: Period
    name: str | None = None
    ramp: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class Budget:
    name: str
    amount: Decimal
    currency: str
    period: str
    tenant: str | None = None
    project: str | None = None
    alert_at: tuple[Decimal, ...] = ()

    @property
    def owner(self) -> tuple[str, str]:
        """Which column of the entries the budget filters on, and the value (as core's)."""
        return (
            ("tenant", self.tenant) if self.tenant is not None else ("project", self.project or "")
        )


@dataclass(frozen=True)
class Spec:
    commitments: tuple[Commitment, ...] = ()
    budgets: tuple[Budget, ...] = ()
    concentration: Concentration | None = None


@dataclass(frozen=True)
class Forecast:
    """The contract's Forecast shape."""

    months: list[date]
    mean: list[Decimal]
    low: list[Decimal]
    high: list[Decimal]
    level: float
    at_end: tuple[Decimal, Decimal, Decimal]
    method: str


@dataclass(frozen=True)
class Burn:
    """The contract's Burn shape."""

    commitment: Any
    currency: str
    months: list[date]
    spent: list[Decimal]
    target: Decimal
    forecast: Forecast | None = None
    calls: list[Any] = field(default_factory=list)
