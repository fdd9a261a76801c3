"""Offers, policies and verdicts as JSON, and the money text every output shares.

The plan and fleet documents are in ``_documents``; tables are in ``_render``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from archipel.core import CatalogSnapshot, Offer
from archipel.placement import OfferVerdict, ScoreBreakdown


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
    for dc in policy.data_classes.values():
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
    assignments = apportion([a.option.cost * a.units for a in plan.assignments], usage)
    # a provider's usage is the sum of its assignments' cents, so that the assignments
    # table and the providers table never show one amount a cent apart
    by_provider: dict[str, Decimal] = {}
    for a, cents in zip(plan.assignments, assignments, strict=True):
        by_provider[a.option.provider] = by_provider.get(a.option.provider, Decimal(0)) + cents
    return FleetCents(
        total,
        usage,
        shortfall,
        tuple(assignments),
        tuple(by_provider.get(p.provider, Decimal("0.00")) for p in acc.providers),
        tuple(apportion([p.shortfall for p in acc.providers], shortfall)),
    )
