"""An independent, brute-force reading of the default policy and a plan request.

Written from the issue's rules, not from the engine: it walks every offer one
by one with exact decimals, and takes country groups and provider facts from
the hand-written tables of ``tests/facts.py``, not from the snapshot. The property tests compare the engine against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tests.facts import ADEQUACY_FULL, EEA, EU_MEMBER_STATES, PROVIDER_FACTS

from archipel.core import CatalogSnapshot, Offer
from archipel.placement import PlacementRequest


@dataclass(frozen=True)
class Priced:
    offer: Offer
    hourly_usd: Decimal  # whole placement, per hour, comparison currency
    total_usd: Decimal
    spot: bool


def allowed_by_default_policy(snapshot: CatalogSnapshot, offer: Offer, data_class: str) -> bool:
    """The default policy, from the independent tables of ``tests/facts.py``.

    ``snapshot`` is not read for facts: a wrong fact in the snapshot must not
    make the reference agree with the engine.
    """
    marketplace, cloud_act, secnumcloud, iso27001 = PROVIDER_FACTS[offer.provider]
    vetted = marketplace is False
    country = offer.country
    if data_class == "public":
        return True
    if data_class == "internal":
        return vetted
    if data_class == "confidential":
        return vetted and iso27001 is True
    if data_class == "personal":
        return vetted and country is not None and (country in EEA or country in ADEQUACY_FULL)
    if data_class == "health":
        return country is not None and country in EEA and cloud_act == "no"
    if data_class == "sovereign":
        return country is not None and country in EEA and secnumcloud == "qualified"
    raise AssertionError(data_class)


#: What a request's country group allows (independent lists).
REQUEST_GROUPS = {"EU": EU_MEMBER_STATES, "EEA": EEA}


def satisfies(snapshot: CatalogSnapshot, offer: Offer, request: PlacementRequest) -> bool:
    """Every hard rule but price: hardware, policy, the user's constraints."""
    if not any(
        offer.accelerator == a.model and offer.accelerator_count == a.count
        for a in request.accelerators
    ):
        return False
    if not allowed_by_default_policy(snapshot, offer, request.data_class):
        return False
    if request.countries:
        allowed: set[str] = set()
        for c in request.countries:
            allowed |= REQUEST_GROUPS.get(c, {c})
        if offer.country not in allowed:
            return False
    if request.providers and offer.provider not in request.providers:
        return False
    return offer.provider not in request.exclude_providers


def price(snapshot: CatalogSnapshot, offer: Offer, request: PlacementRequest) -> Priced | None:
    rate = snapshot.fx_rates[offer.currency]
    options = []
    if offer.price_per_hour is not None:
        options.append((offer.price_per_hour * rate, False))
    if request.spot and offer.spot_price_per_hour is not None:
        options.append((offer.spot_price_per_hour * rate, True))
    if not options:
        return None
    unit, spot = min(options, key=lambda o: o[0])
    hourly = unit * request.nodes
    if request.max_price_per_hour is not None and hourly > request.max_price_per_hour:
        return None
    return Priced(offer, hourly, hourly * request.hours, spot)


def feasible(
    snapshot: CatalogSnapshot, offers: Iterable[Offer], request: PlacementRequest
) -> list[Priced]:
    out = []
    for offer in offers:
        if satisfies(snapshot, offer, request):
            priced = price(snapshot, offer, request)
            if priced is not None:
                out.append(priced)
    return sorted(out, key=lambda p: p.total_usd)


def best_per_market(found: Iterable[Priced], top: int) -> list[Decimal]:
    """The totals a ranking of ``top`` must show: the cheapest of each provider, region,
    instance type and market, cheapest first. Ties cannot change this list."""
    best: dict[tuple[str, str, str, bool], Decimal] = {}
    for p in found:
        key = (p.offer.provider, p.offer.region, p.offer.instance_type, p.spot)
        best[key] = min(best.get(key, p.total_usd), p.total_usd)
    return sorted(best.values())[:top]
