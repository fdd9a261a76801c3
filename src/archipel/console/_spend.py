"""``/ui/spend``: the ledger's spend as ``archipel report`` figures and draws it, for admins.

Who may look follows the API: ``/v1/ledger/*`` answers admins only, with the
same 403 for anyone else, and covers every tenant's entries (the ledger is
the organisation's, not a tenant's), so this view does too. The figures are
the report's own (:class:`archipel.ledger.Report`, made by the function that
``archipel report`` calls, which ``archipel server`` hands over as
:class:`Spend`), drawn by the report's own plots; the console only lays them
out, and rewrites the plots' inline styles for its CSP (:mod:`._svg`).

Three empty states say what to do: no ledger (``--ledger off``), an empty
ledger, and no FinOps spec (spend by provider and month only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from archipel.console._auth import Console, RefusedError, Viewer, console, viewer
from archipel.console._render import page
from archipel.console._svg import strict
from archipel.ledger import Plots, Report, draw_plots

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]
Day = Annotated[
    date | None,
    Query(description="Figures as of this day, YYYY-MM-DD (default: today, UTC)."),
]


@dataclass(frozen=True, slots=True)
class Spend:
    """What the spend view reads, composed by ``archipel server``.

    ``figures(day)`` is ``archipel report``'s figures over the server's ledger as
    of ``day``; ``today`` is the server's day (UTC); ``finops`` names the FinOps
    spec the figures use (``--finops``), or is ``None``: then the figures have no
    commitment, budget or cap, and the view shows spend by provider and month only.
    """

    figures: Callable[[date], Report]
    today: Callable[[], date]
    finops: str | None = None


@dataclass(frozen=True, slots=True)
class MonthRow:
    """One month of the monthly figure: each provider's spend, in the report's order."""

    month: date
    spend: tuple[Any, ...]  # Decimal per provider, or None where it spent nothing


def _months(report: Report) -> tuple[list[str], list[MonthRow]]:
    """The monthly figure as a table (months by providers): its cells are the report's."""
    providers = [s.name for s in report.providers]
    cells = {
        (m.month, m.provider if m.provider is not None else "unknown"): m.spend
        for m in report.by_month
    }
    return providers, [
        MonthRow(month, tuple(cells.get((month, p)) for p in providers)) for month in report.months
    ]


def _context(ui: Console, seen: Viewer, day: date | None) -> dict[str, Any]:
    if not seen.may_see_spend:
        # the words of the API's own refusal on /v1/ledger/*
        raise RefusedError(403, f"role {seen.who.role} may not do this; it needs the admin role")
    spend = ui.spend
    context: dict[str, Any] = {"viewer": seen, "spend": spend, "report": None}
    if spend is None:
        return context
    report = spend.figures(day or spend.today())
    plots = draw_plots(report, monthly_only=spend.finops is None)
    providers, months = _months(report)
    return {
        **context,
        "report": report,
        "plots": Plots(
            None if plots.monthly is None else strict(plots.monthly),
            tuple(strict(p) for p in plots.commitments),
            None if plots.concentration is None else strict(plots.concentration),
            None if plots.jurisdiction is None else strict(plots.jurisdiction),
        ),
        "month_providers": providers,
        "months": months,
    }


@router.get("/spend")
def spend_page(request: Request, ui: Ui, seen: Seen, today: Day = None) -> Response:
    """Spend by provider and month; with a FinOps spec, commitments, concentration,
    jurisdiction, budgets and alerts. Not polled: the ledger grows as attempts end."""
    return page(request, "spend.html", _context(ui, seen, today))
