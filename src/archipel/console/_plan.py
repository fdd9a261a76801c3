"""``/ui/plan``: ``archipel plan`` as a form: ranked placements over the catalog, and what
turned every other offer down.

The form's fields are the command's flags (``--gpus``, ``--data-class``,
``--countries``, ``--spot``, ``--nodes``, ``--hours``, ``--top``) and it is a
GET, so a plan has an address one can share. It reads the catalog and the
policy the server runs with (its ``--policy``), compared in the policy's
currency, as ``archipel plan`` does with the same policy file; a user's
``--offers`` are not merged here. Any signed-in role may plan: planning
reads no tenant's data.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from archipel.console._auth import Console, RefusedError, Viewer, console, viewer
from archipel.console._render import page
from archipel.core import InputError, Workload, parse_workload
from archipel.placement import PlacementRequest, Plan, Planner

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]


def _split(text: str) -> list[str]:
    """A comma-separated field's values, blanks dropped (as the command's flags)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def workload_of(
    gpus: str, data_class: str, countries: str, spot: bool, nodes: int, hours: Decimal
) -> Workload:
    """The workload the form describes, as ``archipel plan --gpus ...`` builds it."""
    doc: dict[str, Any] = {
        "name": "console",
        "kind": "batch",
        "resources": {"accelerators": _split(gpus), "spot": spot, "nodes": nodes},
        "data": {"class": data_class or "internal"},
        "constraints": {"countries": _split(countries)},
        "duration_hours": hours,
    }
    return parse_workload(doc, "the plan form")


def request_of(planner: Planner, workload: Workload) -> PlacementRequest:
    """The engine's request, with the data class as the policy spells it (``Health``)."""
    request = PlacementRequest.from_workload(workload)
    return replace(request, data_class=planner.policy.data_class(request.data_class).name)


def _rows(plan: Plan) -> list[dict[str, Any]]:
    out = []
    for p in plan.placements:
        o = p.offer
        per_hour = p.comparison_total / p.hours
        out.append(
            {
                "rank": p.rank,
                "offer": o,
                "market": "spot" if p.spot else "on-demand",
                "per_hour": _money(per_hour),
                "total": _money(p.comparison_total),
                "offer_price": f"{_money(p.price_per_hour)} {p.currency}",
                "foreign": p.currency != plan.comparison_currency,
            }
        )
    return out


def _money(value: Decimal) -> str:
    """At most four decimals, as the command's table shows prices."""
    return f"{value.quantize(Decimal('0.0001')).normalize():f}"


@router.get("/plan")
def plan_page(
    request: Request,
    ui: Ui,
    seen: Seen,
    gpus: Annotated[str, Query(max_length=200)] = "",
    data_class: Annotated[str, Query(alias="class", max_length=100)] = "internal",
    countries: Annotated[str, Query(max_length=400)] = "",
    spot: bool = False,
    nodes: Annotated[int, Query(ge=1, le=1024)] = 1,
    hours: Annotated[Decimal, Query(gt=0, le=100_000)] = Decimal(1),
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """The plan form, and the plan it asks for once it names accelerators."""
    if ui.planner is None:
        raise RefusedError(404, "this server does not plan from the console")
    planner = ui.planner()
    context: dict[str, Any] = {
        "viewer": seen,
        "fleet": ui.fleet is not None,
        "form": {
            "gpus": gpus,
            "class": data_class,
            "countries": countries,
            "spot": spot,
            "nodes": nodes,
            "hours": hours,
            "top": top,
        },
        "classes": sorted(planner.policy.data_classes),
        "plan": None,
        "rows": [],
        "problems": [],
    }
    status = 200
    if gpus.strip():
        try:
            workload = workload_of(gpus, data_class, countries, spot, nodes, hours)
            plan = planner.plan(request_of(planner, workload), top=top)
        except InputError as exc:
            context["problems"] = str(exc).splitlines()
            status = 400
        else:
            context["plan"], context["rows"] = plan, _rows(plan)
    return page(request, "plan.html", context, status=status)
