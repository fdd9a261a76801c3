"""An independent, brute-force reading of the default policy and a plan request.

Written from the issue's rules, not from the engine: it walks every offer one
by one with exact decimals. The property tests compare the engine against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from archipel.core import CatalogSnapshot, CloudActExposure, Offer
from archipel.placement import PlacementRequest


@dataclass(frozen=True)
class Priced:
    offer: Offer
    hourly_usd: Decimal  # whole placement, per hour, comparison currency
    total_usd: Decimal
    spot: bool


def allowed_by_default_policy(snapshot: CatalogSnapshot, offer: Offer, data_class: str) -> bool:
    facts = snapshot.provider(offer.provider)
    law = snapshot.jurisdictions
    eu_eea = law.eu | law.eea_non_eu
    vetted = facts.registered and facts.marketplace is False
    country = offer.country
    if data_class == "public":
        return True
    if data_class == "internal":
        return vetted
    if data_class == "confidential":
        return vetted and facts.certifications.get("iso27001") is True
    if data_class == "personal":
        return (
            vetted and country is not None and (country in eu_eea or country in law.adequacy_full)
        )
    if data_class == "health":
        return country is not None and country in eu_eea and facts.cloud_act is CloudActExposure.NO
    if data_class == "sovereign":
        return country is not None and country in eu_eea and facts.secnumcloud == "qualified"
    raise AssertionError(data_class)


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
        law = snapshot.jurisdictions
        allowed = set()
        for c in request.countries:
            allowed |= (law.eu | law.eea_non_eu) if c == "EU" else {c}
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
