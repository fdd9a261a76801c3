"""Turning plans and offers into JSON documents and Rich tables (no decisions here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from archipel.core import CatalogSnapshot, Offer
from archipel.placement import OfferVerdict, Plan, ScoreBreakdown


def _money(value: Decimal) -> str:
    """Exact decimal text, no exponent, no trailing zeros beyond cents."""
    text = format(value.normalize(), "f")
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
        frac = frac.ljust(2, "0")
        return f"{whole}.{frac}"
    return f"{text}.00"


def _count(value: float) -> int | float:
    return int(value) if value == int(value) else value


def plan_document(plan: Plan, snapshot: CatalogSnapshot) -> dict[str, Any]:
    """The stable JSON document of one plan (see docs/plan.md)."""
    placements = []
    for p in plan.placements:
        facts = snapshot.provider(p.offer.provider)
        placements.append(
            {
                "rank": p.rank,
                "provider": p.offer.provider,
                "region": p.offer.region,
                "zone": p.offer.zone,
                "country": p.offer.country,
                "instance_type": p.offer.instance_type,
                "accelerator": p.offer.accelerator,
                "accelerator_count": _count(p.offer.accelerator_count),
                "nodes": p.nodes,
                "price_per_hour": _money(p.price_per_hour),
                "currency": p.currency,
                "total_cost": _money(p.total_cost),
                "comparison_total": _money(p.comparison_total.quantize(Decimal("0.0001"))),
                "spot": p.spot,
                "jurisdiction": {
                    "hq_country": facts.hq_country,
                    "cloud_act": None if facts.cloud_act is None else facts.cloud_act.value,
                    "secnumcloud": facts.secnumcloud,
                    "iso27001": facts.certification("iso27001"),
                },
                "scores": p.scores,
            }
        )
    r = plan.request
    return {
        "name": r.name,
        "feasible": plan.feasible,
        "request": {
            "accelerators": [str(a) for a in r.accelerators],
            "data_class": r.data_class,
            "nodes": r.nodes,
            "hours": format(r.hours.normalize(), "f"),
            "spot": r.spot,
            "countries": list(r.countries),
            "providers": list(r.providers),
            "exclude_providers": list(r.exclude_providers),
            "max_price_per_hour": None
            if r.max_price_per_hour is None
            else _money(r.max_price_per_hour),
        },
        "comparison_currency": plan.comparison_currency,
        "placements": placements,
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
            "offers_seen": plan.trace.offers_seen,
            "candidates": plan.trace.candidates,
            "feasible_offers": plan.trace.feasible_offers,
            "feasible_placements": plan.trace.feasible_placements,
            "rejected_by_plugin": plan.trace.rejected_by_plugin,
        },
    }


def policy_document(policy: Any, snapshot: CatalogSnapshot, source: str) -> dict[str, Any]:
    """A policy's data classes, their rules in words and how many offers each allows.

    Counts are of catalog offers with an accelerator (``gpu_offers``): what a
    plan can choose from before the request's own constraints.
    """
    import numpy as np

    from archipel.policy import evaluate_classes

    offers = snapshot.offers
    class_of = offers.col("class_idx")
    has_gpu = np.asarray([bool(a) for a in offers.accelerators], dtype=bool)[
        offers.col("accel_idx")
    ]
    per_class = np.bincount(class_of[has_gpu], minlength=len(offers.classes))
    gpu_offers = int(per_class.sum())
    classes = []
    for dc in policy.classes.values():
        verdicts = evaluate_classes(dc, offers.classes, snapshot.provider, snapshot.jurisdictions)
        allowed = sum(int(n) for n, v in zip(per_class, verdicts, strict=True) if not v)
        providers = sorted(
            {
                c.provider
                for c, n, v in zip(offers.classes, per_class, verdicts, strict=True)
                if n and not v
            }
        )
        classes.append(
            {
                "name": dc.name,
                "description": dc.description,
                "rules": [{"rule": r.name, "requires": r.describe()} for r in dc.rules],
                "allowed_offers": allowed,
                "allowed_providers": providers,
            }
        )
    return {
        "source": source,
        "valid": True,
        "policy": policy.name,
        "gpu_offers": gpu_offers,
        "data_classes": classes,
    }


def offer_document(offer: Offer) -> dict[str, Any]:
    """One offer as JSON."""
    return {
        "provider": offer.provider,
        "region": offer.region,
        "zone": offer.zone,
        "country": offer.country,
        "instance_type": offer.instance_type,
        "accelerator": offer.accelerator,
        "accelerator_count": _count(offer.accelerator_count),
        "gpu_memory_gib": offer.gpu_memory_gib,
        "vcpus": offer.vcpus,
        "memory_gib": offer.memory_gib,
        "price_per_hour": None if offer.price_per_hour is None else _money(offer.price_per_hour),
        "spot_price_per_hour": (
            None if offer.spot_price_per_hour is None else _money(offer.spot_price_per_hour)
        ),
        "currency": offer.currency,
        "source": offer.source,
    }


def explain_document(verdicts: Sequence[OfferVerdict], currency: str) -> list[dict[str, Any]]:
    """Each offer's verdicts as JSON."""
    return [
        {
            **offer_document(v.offer),
            "feasible": not v.rejections,
            "rank": v.rank,
            "total_cost": None if v.total_cost is None else _money(v.total_cost),
            "comparison_total": None if v.comparison_total is None else _money(v.comparison_total),
            "winner_total": None if v.best_total is None else _money(v.best_total),
            "comparison_currency": currency,
            "score": score_document(v.scores),
            "winner_score": score_document(v.winner_scores),
            "rejections": [
                {
                    "reason": r.reason.value,
                    "plugin": r.plugin,
                    "message": r.message,
                    "unresolvable": r.unresolvable,
                }
                for r in v.rejections
            ],
        }
        for v in verdicts
    ]


def score_document(breakdown: ScoreBreakdown | None) -> dict[str, Any] | None:
    """A score breakdown as JSON: the total and each plugin's part, to three decimals."""
    if breakdown is None:
        return None
    return {
        "total": round(breakdown.total, 3),
        "plugins": [
            {"plugin": p.plugin, "score": round(p.score, 3), "weight": p.weight}
            for p in breakdown.plugins
        ],
    }


def solver_status(report: Any) -> str:
    """``optimal`` only for a proven zero gap; a solve stopped within ``--gap`` is ``feasible``."""
    if report.status == "optimal" and report.gap:
        return "feasible"
    return str(report.status)


def _dec(value: Decimal, places: str = "0.01") -> str:
    return format(value.quantize(Decimal(places)), "f")


_CENT = Decimal("0.01")


def apportion(parts: Sequence[Decimal], total: Decimal) -> list[Decimal]:
    """``parts`` in cents that add up to ``total`` (already in cents): largest remainders.

    Each part is floored to the cent, and the cents left over go to the parts
    whose floors cut the most (the first of equals first). Each result is
    within one cent of its exact part.
    """
    floors = [p.quantize(_CENT, rounding=ROUND_FLOOR) for p in parts]
    left = int((total - sum(floors, Decimal(0))) / _CENT)
    by_cut = sorted(range(len(parts)), key=lambda i: (-(parts[i] - floors[i]), i))
    for i in by_cut[: max(0, left)]:
        floors[i] += _CENT
    return floors


@dataclass(frozen=True)
class FleetCents:
    """A fleet plan's figures rounded to cents so that every part adds up to its total.

    ``None`` totals: no plan (the fleet is infeasible and nothing is placed),
    so there is no cost to give.
    """

    total: Decimal | None
    usage: Decimal | None
    shortfall: Decimal | None
    assignments: tuple[Decimal, ...]  # in the order of plan.assignments; add up to usage
    provider_usage: tuple[Decimal, ...]  # in the order of plan.account.providers; add up to usage
    provider_shortfall: tuple[Decimal, ...]  # add up to shortfall


def fleet_cents(plan: Any) -> FleetCents:
    """The cent figures of a fleet plan (JSON and tables show the same ones)."""
    acc = plan.account
    if not plan.feasible and not plan.assignments:
        return FleetCents(None, None, None, (), (), ())
    total = acc.total.quantize(_CENT)
    usage, shortfall = apportion([acc.usage, acc.shortfall], total)
    return FleetCents(
        total,
        usage,
        shortfall,
        tuple(apportion([a.option.cost * a.units for a in plan.assignments], usage)),
        tuple(apportion([p.usage for p in acc.providers], usage)),
        tuple(apportion([p.shortfall for p in acc.providers], shortfall)),
    )


def fleet_document(plan: Any, timings: bool = False) -> dict[str, Any]:
    """The stable JSON document of a fleet plan (see docs/fleet.md)."""
    from archipel.placement import FleetPlan

    assert isinstance(plan, FleetPlan)
    cents = fleet_cents(plan)
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for a, cost in zip(plan.assignments, cents.assignments, strict=True):
        o = a.option.placement.offer
        by_workload.setdefault(a.workload, []).append(
            {
                "provider": o.provider,
                "region": o.region,
                "country": o.country,
                "instance_type": o.instance_type,
                "accelerator": o.accelerator,
                "accelerator_count": _count(o.accelerator_count),
                "nodes": a.option.placement.nodes,
                "units": a.units,
                "spot": a.option.placement.spot,
                "price_per_hour": _money(a.option.placement.price_per_hour),
                "currency": a.option.placement.currency,
                "cost": format(cost, "f"),
            }
        )
    s = plan.solver
    solver: dict[str, Any] = {
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
        solver["seconds"] = round(s.seconds, 3)
    acc = plan.account
    priced = cents.total is not None

    def text(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "name": plan.name,
        "feasible": plan.feasible,
        "currency": plan.currency,
        "total_cost": text(cents.total),
        "usage_cost": text(cents.usage),
        "shortfall_cost": text(cents.shortfall),
        "solver": solver,
        "assignments": [{"workload": w, "placements": p} for w, p in by_workload.items()],
        "providers": [
            {
                "provider": p.provider,
                "usage": format(usage, "f"),
                "gpu_hours": _dec(p.gpu_hours, "0.1"),
                "gpu_hours_share": float(round(p.gpu_hours_share, 4)),
                "spend_share": float(round(p.spend_share, 4)),
                "commitment_due": None if p.commitment_due is None else _dec(p.commitment_due),
                "burned": _dec(p.burned),
                "shortfall": format(shortfall, "f"),
            }
            for p, usage, shortfall in zip(
                acc.providers, cents.provider_usage, cents.provider_shortfall, strict=True
            )
        ]
        if priced
        else [],
        "violations": [
            {
                "family": v.family.value,
                "subject": v.subject,
                "excess": str(v.excess),
                "message": v.message,
            }
            for v in plan.violations
        ],
        "diagnosis": [
            {
                "family": v.family.value,
                "subject": v.subject,
                "excess": str(v.excess),
                "message": v.message,
            }
            for v in plan.diagnosis
        ],
        "unplaceable": [
            {
                "workload": c.workload.name,
                "rejections": [
                    {"reason": r.reason.value, "count": r.count, "example": r.example}
                    for r in c.rejections
                ],
            }
            for c in plan.unplaceable
        ],
    }
