"""Committed spend in study 3: what a strategy owes when it spends less than it promised.

A scenario's commitment is a promise to spend ``amount`` (in ``currency``) with one
provider over the simulated span (from the first arrival to the end of the drain), at
the provider's list prices less the contract's ``discount``. A strategy's bill is then:

- each provider's usage at list price, less the discount where it holds a commitment;
- plus, per commitment, the **shortfall**: what was promised and not spent (owed all the
  same, as a committed-spend contract bills it at the end of its term).

The strategy ``commitment-first`` is the engine's own ``commitment`` score plugin
(:class:`archipel.placement.CommitmentScore`) beside ``price``: at each decision it is
given what is still to be spent under each commitment now, so runs go to the committed
provider while something remains and to the cheapest site once it is burned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from archipel.core import CatalogSnapshot, InputError, StrictModel, cross_rate
from archipel.core._fleet import Rate
from archipel.core._money import PositiveCommitmentAmount
from archipel.core._offers import IntArray
from archipel.placement import CommitmentScore, FilterContext, PriceScore, ScorePlugin
from archipel.placement._phases import FloatArray

ScoreName = Literal["price", "commitment"]


class CommitmentSpec(StrictModel):
    """A promise to spend ``amount`` with ``provider`` over the simulated span."""

    provider: Annotated[str, Field(min_length=1)]
    amount: PositiveCommitmentAmount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    discount: Rate = Decimal(0)


@dataclass(frozen=True, slots=True)
class Bill:
    """A strategy's bill in the comparison currency: usage net of discounts, shortfalls."""

    net: Decimal  # usage, less the commitments' discounts
    shortfall: Decimal  # promised and not spent, summed over the commitments
    shortfalls: Mapping[str, Decimal]  # provider -> its commitment's shortfall

    @property
    def total(self) -> Decimal:
        return self.net + self.shortfall


def check_commitments(
    commitments: Sequence[CommitmentSpec], providers: set[str], where: str
) -> None:
    seen: set[str] = set()
    for n, c in enumerate(commitments):
        if c.provider not in providers:
            raise InputError(
                f"{where}: commitments[{n}]: {c.provider!r} is no site's provider "
                f"({', '.join(sorted(providers))})"
            )
        if c.provider in seen:
            raise InputError(
                f"{where}: commitments[{n}]: a second commitment with {c.provider}; "
                "give one per provider (add their amounts)"
            )
        seen.add(c.provider)


class Commitments:
    """The scenario's commitments in the comparison currency of ``snapshot``."""

    def __init__(self, commitments: Sequence[CommitmentSpec], snapshot: CatalogSnapshot) -> None:
        self.currency = snapshot.comparison_currency
        rates = snapshot.fx_rates
        for c in commitments:
            if c.currency not in rates:
                raise InputError(
                    f"commitment with {c.provider}: no exchange rate for {c.currency} in the "
                    f"catalog (it knows {', '.join(sorted(rates))})"
                )
        self._to_cmp = {
            c.provider: cross_rate(rates[c.currency], rates[self.currency]) for c in commitments
        }
        self.by_provider = {c.provider: c for c in commitments}

    def amount(self, provider: str) -> Decimal:
        """The commitment with ``provider`` in the comparison currency (0 without one)."""
        c = self.by_provider.get(provider)
        return Decimal(0) if c is None else c.amount * self._to_cmp[provider]

    def net(self, provider: str, list_cost: Decimal) -> Decimal:
        """Usage at list price, less the provider's commitment discount."""
        c = self.by_provider.get(provider)
        return list_cost if c is None else list_cost * (1 - c.discount)

    def remaining(self, list_cost: Mapping[str, Decimal]) -> dict[str, Decimal]:
        """Per committed provider: what is still to be spent, given usage at list so far."""
        return {
            p: max(Decimal(0), self.amount(p) - self.net(p, list_cost.get(p, Decimal(0))))
            for p in self.by_provider
        }

    def bill(self, list_cost: Mapping[str, Decimal]) -> Bill:
        net = sum((self.net(p, v) for p, v in list_cost.items()), Decimal(0))
        short = self.remaining(list_cost)
        return Bill(net, sum(short.values(), Decimal(0)), short)


class BurnFirst:
    """The engine's ``commitment`` score with what remains *now* under each commitment.

    ``remaining`` is asked at each decision (it changes as the simulation spends); the
    scoring is :class:`~archipel.placement.CommitmentScore`'s.
    """

    name = "commitment"

    def __init__(self, remaining: Callable[[], Mapping[str, Decimal]], weight: int) -> None:
        self.remaining = remaining
        self.weight = CommitmentScore({}, weight).weight

    def score(self, ctx: FilterContext, rows: IntArray) -> FloatArray:
        return CommitmentScore(self.remaining(), self.weight).score(ctx, rows)


def score_plugins(
    weights: Mapping[ScoreName, int], remaining: Callable[[], Mapping[str, Decimal]]
) -> tuple[ScorePlugin, ...]:
    """The strategy's score plugins (price alone when it names none)."""
    if not weights:
        return (PriceScore(),)
    out: list[ScorePlugin] = []
    for name, weight in sorted(weights.items()):
        out.append(PriceScore(weight) if name == "price" else BurnFirst(remaining, weight))
    return tuple(out)
