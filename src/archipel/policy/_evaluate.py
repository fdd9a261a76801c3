"""Evaluate a data class over equivalence classes of offers, once per class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archipel.core import Jurisdictions, OfferClass, ProviderFacts, Rejection
from archipel.policy._model import DataClass


def evaluate_classes(
    data_class: DataClass,
    classes: Sequence[OfferClass],
    provider_facts: Callable[[str], ProviderFacts],
    law: Jurisdictions,
) -> list[tuple[Rejection, ...]]:
    """For each class, every rule that rejects it (empty tuple = allowed).

    Rules run in policy order; all failures are kept so that an explanation
    can list them, and callers count the first.
    """
    out: list[tuple[Rejection, ...]] = []
    for site in classes:
        facts = provider_facts(site.provider)
        failures = [
            r for rule in data_class.rules if (r := rule.check(facts, site, law)) is not None
        ]
        out.append(tuple(failures))
    return out
