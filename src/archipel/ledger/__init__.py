"""What it cost: an append-only ledger of priced usage, with chargeback.

Entries come in from sources, idempotently (the gateway's usage log today:
:func:`read_usage`), and are kept in SQL tables with their own migration
chain (:class:`Ledger`); :func:`totals` sums the current ones per tenant,
provider, model, data class or country, exactly, and :func:`converted` puts
each group in one currency. Money is a ``Decimal`` from the source line to the
total: see docs/ledger.md. :class:`Report` holds the figures of ``archipel
report`` and :func:`draw_plots` draws them (docs/report.md).
"""

from archipel.ledger._alerts import Alert, budget_alerts, commitment_alerts
from archipel.ledger._budgets import BudgetStatus, budget_status
from archipel.ledger._columnar import ColumnarReport, StoreError, ingest_columnar
from archipel.ledger._commitments import Burn, Forecast, RampYear, burn_down
from archipel.ledger._entry import Dimension, Entry, join_fixed, split_fixed
from archipel.ledger._forecast import Score, backtest
from archipel.ledger._ingest import IngestReport, MalformedUsageError, ingest_usage
from archipel.ledger._report import Report
from archipel.ledger._report_html import Plots, draw_plots
from archipel.ledger._store import Added, Ledger
from archipel.ledger._totals import Converted, Total, converted, totals, totals_of
from archipel.ledger._usage import UsageProblem, read_usage, usage_entry

__all__ = [
    "Added",
    "Alert",
    "BudgetStatus",
    "Burn",
    "ColumnarReport",
    "Converted",
    "Dimension",
    "Entry",
    "Forecast",
    "IngestReport",
    "Ledger",
    "MalformedUsageError",
    "Plots",
    "RampYear",
    "Report",
    "Score",
    "StoreError",
    "Total",
    "UsageProblem",
    "backtest",
    "budget_alerts",
    "budget_status",
    "burn_down",
    "commitment_alerts",
    "converted",
    "draw_plots",
    "ingest_columnar",
    "ingest_usage",
    "join_fixed",
    "read_usage",
    "split_fixed",
    "totals",
    "totals_of",
    "usage_entry",
]
