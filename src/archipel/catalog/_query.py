"""Browsing the snapshot: select offers by accelerator, country and provider.

This is catalog listing, not placement: no policy, no ranking by cost of a
workload, only the offers' own hourly prices (cheapest first, comparison currency).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archipel.core import (
    MISSING,
    CatalogSnapshot,
    Offer,
    parse_accelerator_spec,
    resolve_accelerator,
)


def select_offers(
    snapshot: CatalogSnapshot,
    gpus: Sequence[str] = (),
    countries: Sequence[str] = (),
    providers: Sequence[str] = (),
    accelerators_only: bool = True,
) -> np.ndarray:
    """Row indices of matching offers, cheapest on-demand (else spot) first.

    ``gpus`` holds ``MODEL`` or ``MODEL:COUNT`` items (any matches); ``countries``
    ISO codes, ``EU`` (the 27 member states) or ``EEA`` (EU plus IS, LI, NO);
    unknown accelerator names raise with suggestions.
    """
    offers = snapshot.offers
    mask = np.ones(len(offers), dtype=np.bool_)
    accel = offers.col("accel_idx")
    if gpus:
        known = [a for a in offers.accelerators if a]
        want = np.zeros(len(offers), dtype=np.bool_)
        for item in gpus:
            spec = parse_accelerator_spec(item)
            model = list(offers.accelerators).index(resolve_accelerator(spec.model, known))
            hit = accel == model
            if ":" in item:
                hit &= offers.col("accel_count") == spec.count
            want |= hit
        mask &= want
    elif accelerators_only and "" in offers.accelerators:
        mask &= accel != list(offers.accelerators).index("")
    if countries:
        allowed = snapshot.jurisdictions.countries(countries)
        ok = np.fromiter((c.country in allowed for c in offers.classes), dtype=np.bool_)
        mask &= ok[offers.col("class_idx")]
    if providers:
        chosen = set(providers)
        ok = np.fromiter((c.provider in chosen for c in offers.classes), dtype=np.bool_)
        mask &= ok[offers.col("class_idx")]
    rows = np.nonzero(mask)[0]
    price = offers.col("cmp_price")[rows]
    spot = offers.col("cmp_spot_price")[rows]
    key = np.where(price == MISSING, spot, price)
    key = np.where(key == MISSING, np.iinfo(np.int64).max, key)
    order = np.lexsort((offers.col("instance_idx")[rows], offers.col("class_idx")[rows], key))
    return rows[order]


def offers_at(snapshot: CatalogSnapshot, rows: np.ndarray) -> list[Offer]:
    """Materialise rows as :class:`Offer` objects."""
    return [snapshot.offers.offer(int(r)) for r in rows]
