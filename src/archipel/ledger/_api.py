"""The ledger's FinOps view over HTTP: commitments, budgets, alerts and Prometheus metrics.

:func:`ledger_router` is an ``APIRouter`` a server mounts; the ledger knows
nothing of who may call it: the server passes its own guard as
``dependencies`` (the control plane mounts it for admins only). Every answer
is computed from the current entries when asked, as of ``today`` (UTC) or the
``today`` query parameter.

``GET /v1/ledger/metrics`` is Prometheus text:

- ``archipel_commitment_burned_ratio{commitment,provider}``: spent to date / amount;
- ``archipel_commitment_forecast_ratio{commitment,provider,bound}``: the forecast at
  term end / amount, ``bound`` one of ``mean``, ``low``, ``high``;
- ``archipel_ledger_alerts{kind}``: the alerts raised now, per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query
from fastapi.responses import Response

from archipel.core import FinOpsSpec
from archipel.ledger._alerts import KINDS
from archipel.ledger._documents import finops_report


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class FinOpsSource:
    """What the routes read: the spec, the catalog's rates and a way to the entries."""

    spec: FinOpsSpec
    rates: Mapping[str, Decimal]
    #: a fresh connection holding the ``entries`` relation (closed after each answer)
    connect: Callable[[], duckdb.DuckDBPyConnection]
    today: Callable[[], date] = field(default=utc_today)
    level: float = 0.8

    def report(self, today: date | None) -> dict[str, Any]:
        connection = self.connect()
        try:
            day = today if today is not None else self.today()
            return finops_report(self.spec, connection, self.rates, day, level=self.level)
        finally:
            connection.close()


Today = Annotated[
    date | None,
    Query(description="Measure as of this day (spend before it counts)."),
]


def ledger_router(source: FinOpsSource, *, dependencies: Sequence[Any] = ()) -> APIRouter:
    """The ``/v1/ledger`` routes over ``source``, each behind ``dependencies``."""
    router = APIRouter(prefix="/v1/ledger", tags=["ledger"], dependencies=list(dependencies))

    @router.get("/commitments")
    def commitments(today: Today = None) -> dict[str, Any]:
        """Each commitment burned down to date, its forecast at term end and its ramp."""
        doc = source.report(today)
        return {"today": doc["today"], "commitments": doc["commitments"]}

    @router.get("/budgets")
    def budgets(today: Today = None) -> dict[str, Any]:
        """Each budget's current period: spent and forecast at its end."""
        doc = source.report(today)
        return {"today": doc["today"], "budgets": doc["budgets"]}

    @router.get("/alerts")
    def alerts(today: Today = None) -> dict[str, Any]:
        """The shortfall, overrun and budget alerts raised now."""
        doc = source.report(today)
        return {"today": doc["today"], "alerts": doc["alerts"]}

    @router.get("/metrics", response_class=Response)
    def metrics(today: Today = None) -> Response:
        """Burn and forecast ratios and alert counts, as Prometheus text."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics_text(source.report(today)), media_type=CONTENT_TYPE_LATEST)

    return router


def metrics_text(doc: Mapping[str, Any]) -> bytes:
    """The gauges of one FinOps report, in Prometheus' text format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    burned = Gauge(
        "archipel_commitment_burned_ratio",
        "Share of the commitment's amount spent to date.",
        ["commitment", "provider"],
        registry=registry,
    )
    forecast = Gauge(
        "archipel_commitment_forecast_ratio",
        "Forecast spend at term end over the commitment's amount (mean and interval bounds).",
        ["commitment", "provider", "bound"],
        registry=registry,
    )
    alerts = Gauge(
        "archipel_ledger_alerts", "Alerts raised now, per kind.", ["kind"], registry=registry
    )
    for c in doc["commitments"]:
        amount = Decimal(c["amount"])
        burned.labels(c["name"], c["provider"]).set(float(Decimal(c["spent"]) / amount))
        for bound in ("mean", "low", "high"):
            ratio = Decimal(c["at_end"][bound]) / amount
            forecast.labels(c["name"], c["provider"], bound).set(float(ratio))
    for kind in KINDS:
        alerts.labels(kind).set(sum(1 for a in doc["alerts"] if a["kind"] == kind))
    return generate_latest(registry)
