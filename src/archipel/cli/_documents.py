"""The JSON documents of ``plan`` and ``fleet plan`` (see docs/plan.md and docs/fleet.md).

Money fields say what they measure: ``price_per_node_hour`` (one node, one
hour), ``price_per_placement_hour`` (all the placement's nodes, one hour) and
``total_cost`` (the whole run or horizon), in the document's ``currency``, the
comparison currency everything is ranked in. The ``offer_*`` fields give the
same in the offer's own currency (``offer_currency``), exactly as sold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from archipel.cli._output import _count, _dec, _money, fleet_cents, solver_status
from archipel.core import CatalogSnapshot, nano_to_decimal
from archipel.placement import Placement, Plan


def node_hour_in_comparison(snapshot: CatalogSnapshot, p: Placement) -> Decimal:
    """One node-hour of ``p`` in the comparison currency: the very figure it was ranked on."""
    column = "cmp_spot_price" if p.spot else "cmp_price"
    return nano_to_decimal(int(snapshot.offers.col(column)[p.offer.index]))


def exchange_rates(snapshot: CatalogSnapshot, currencies: Iterable[str]) -> dict[str, str]:
    """The rate into the comparison currency of each currency shown (and of itself, 1)."""
    shown = sorted({snapshot.comparison_currency, *currencies})
    return {code: format(snapshot.fx_rates.get(code, Decimal(1)), "f") for code in shown}


def price_fields(snapshot: CatalogSnapshot, p: Placement) -> dict[str, Any]:
    """The hourly prices of a placement: comparison currency, then the offer's own."""
    node_hour = node_hour_in_comparison(snapshot, p)
    return {
        "price_per_node_hour": _money(node_hour),
        "price_per_placement_hour": _money(node_hour * p.nodes),
        "offer_currency": p.currency,
        "offer_price_per_node_hour": _money(p.price_per_hour),
        "offer_price_per_placement_hour": _money(p.price_per_hour * p.nodes),
    }


def _offer_fields(p: Placement) -> dict[str, Any]:
    o = p.offer
    return {
        "provider": o.provider,
        "region": o.region,
        "zone": o.zone,
        "country": o.country,
        "instance_type": o.instance_type,
        "accelerator": o.accelerator,
        "accelerator_count": _count(o.accelerator_count),
        "nodes": p.nodes,
        "spot": p.spot,
    }


def _jurisdiction(snapshot: CatalogSnapshot, provider: str) -> dict[str, Any]:
    facts = snapshot.provider(provider)
    return {
        "hq_country": facts.hq_country,
        "cloud_act": None if facts.cloud_act is None else facts.cloud_act.value,
        "secnumcloud": facts.secnumcloud,
        "iso27001": facts.certification("iso27001"),
    }


def placement_document(snapshot: CatalogSnapshot, p: Placement) -> dict[str, Any]:
    """One ranked placement: where, at what price (both currencies), under which law."""
    total = node_hour_in_comparison(snapshot, p) * p.nodes * p.hours
    return {
        "rank": p.rank,
        **_offer_fields(p),
        **price_fields(snapshot, p),
        "total_cost": _money(total),
        "offer_total_cost": _money(p.total_cost),
        "jurisdiction": _jurisdiction(snapshot, p.offer.provider),
        "scores": p.scores,
    }


def _request_document(plan: Plan) -> dict[str, Any]:
    r = plan.request
    cap = r.max_price_per_hour
    return {
        "accelerators": [str(a) for a in r.accelerators],
        "data_class": r.data_class,
        "nodes": r.nodes,
        "hours": format(r.hours.normalize(), "f"),
        "spot": r.spot,
        "countries": list(r.countries),
        "providers": list(r.providers),
        "exclude_providers": list(r.exclude_providers),
        "max_price_per_placement_hour": None if cap is None else _money(cap),
    }


def plan_document(plan: Plan, snapshot: CatalogSnapshot) -> dict[str, Any]:
    """One workload's plan: its request, ranked placements, rejections and trace."""
    t = plan.trace
    return {
        "name": plan.request.name,
        "feasible": plan.feasible,
        "request": _request_document(plan),
        "placements": [placement_document(snapshot, p) for p in plan.placements],
        "rejections": [
            {
                "reason": j.reason.value,
                "plugin": j.plugin,
                "count": j.count,
                "unresolvable": j.unresolvable,
                "example": j.example,
            }
            for j in plan.rejections
        ],
        "trace": {
            "offers_seen": t.offers_seen,
            "candidates": t.candidates,
            "feasible_offers": t.feasible_offers,
            "feasible_placements": t.feasible_placements,
            "rejected_by_plugin": t.rejected_by_plugin,
        },
    }


def plans_document(plans: Sequence[Plan], snapshot: CatalogSnapshot) -> dict[str, Any]:
    """The one document of ``plan --json``, for flags and for a file of any length."""
    return {
        "feasible": all(p.feasible for p in plans),
        "currency": snapshot.comparison_currency,
        "exchange_rates": exchange_rates(
            snapshot, (x.currency for p in plans for x in p.placements)
        ),
        "plans": [plan_document(p, snapshot) for p in plans],
    }


# --- fleet plan ----------------------------------------------------------------------------


def _fleet_placement(snapshot: CatalogSnapshot, a: Any, cost: Decimal) -> dict[str, Any]:
    p = a.option.placement
    fields = _offer_fields(p)
    del fields["zone"]
    return {
        **fields,
        "units": a.units,
        **price_fields(snapshot, p),
        "total_cost": format(cost, "f"),
    }


def _solver_document(s: Any, timings: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": s.solver,
        "status": solver_status(s),
        "objective": None if s.objective is None else _dec(s.objective),
        "bound": None if s.bound is None else _dec(s.bound),
        "gap": s.gap,
        "variables": s.variables,
        "constraints": s.constraints,
        "integer_variables": s.integer_variables,
    }
    if timings:
        doc["seconds"] = round(s.seconds, 3)
    return doc


def _providers_document(plan: Any, cents: Any) -> list[dict[str, Any]]:
    if cents.total is None:
        return []
    rows = zip(plan.account.providers, cents.provider_usage, cents.provider_shortfall, strict=True)
    return [
        {
            "provider": p.provider,
            "usage_cost": format(usage, "f"),
            "gpu_hours": _dec(p.gpu_hours, "0.1"),
            "gpu_hours_share": float(round(p.gpu_hours_share, 4)),
            "spend_share": float(round(p.spend_share, 4)),
            "commitment_due": None if p.commitment_due is None else _dec(p.commitment_due),
            "burned": _dec(p.burned),
            "shortfall_cost": format(shortfall, "f"),
        }
        for p, usage, shortfall in rows
    ]


def _violations(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "family": v.family.value,
            "subject": v.subject,
            "excess": str(v.excess),
            "message": v.message,
        }
        for v in items
    ]


def _unplaceable(plan: Any) -> list[dict[str, Any]]:
    return [
        {
            "workload": c.workload.name,
            "rejections": [
                {"reason": r.reason.value, "count": r.count, "example": r.example}
                for r in c.rejections
            ],
        }
        for c in plan.unplaceable
    ]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def fleet_document(
    plan: Any, snapshot: CatalogSnapshot, timings: bool = False, horizon: Any = None
) -> dict[str, Any]:
    """The stable JSON document of a fleet plan (see docs/fleet.md); ``horizon``, the spec's
    :class:`~archipel.core.Period`, says over which days the costs accrue."""
    cents = fleet_cents(plan)
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for a, cost in zip(plan.assignments, cents.assignments, strict=True):
        by_workload.setdefault(a.workload, []).append(_fleet_placement(snapshot, a, cost))
    shown = (a.option.placement.currency for a in plan.assignments)
    return {
        "name": plan.name,
        "feasible": plan.feasible,
        "currency": plan.currency,
        "horizon": None
        if horizon is None
        else {"start": horizon.start.isoformat(), "end": horizon.end.isoformat()},
        "exchange_rates": exchange_rates(snapshot, shown),
        "total_cost": _text(cents.total),
        "usage_cost": _text(cents.usage),
        "shortfall_cost": _text(cents.shortfall),
        "solver": _solver_document(plan.solver, timings),
        "assignments": [{"workload": w, "placements": p} for w, p in by_workload.items()],
        "providers": _providers_document(plan, cents),
        "violations": _violations(plan.violations),
        "diagnosis": _violations(plan.diagnosis),
        "unplaceable": _unplaceable(plan),
    }
