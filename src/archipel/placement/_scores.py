"""Score plugins: how good each feasible offer is, from 0 (worst) to 100 (best).

Each plugin normalises over the feasible rows it is given and has a weight;
``_phases.run_scores`` combines them into a weighted mean. The default is
price alone, which ranks cheapest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import numpy as np

from archipel.core import to_nano
from archipel.core._offers import IntArray
from archipel.placement._phases import (
    MAX_SCORE,
    FilterContext,
    FloatArray,
    ScorePlugin,
    valid_weight,
)


class PriceScore:
    """Cheaper is better: the cheapest feasible placement scores 100.

    A row scores ``100 * cheapest / price``, both per hour of the whole
    placement in the comparison currency (hours cancel out): a row twice the
    cheapest price scores 50. A free row scores 100, and when the cheapest is
    free every row that is not scores 0.
    """

    name = "price"

    def __init__(self, weight: int = 1) -> None:
        self.weight = valid_weight(weight, self.name)

    def __repr__(self) -> str:
        return f"PriceScore(weight={self.weight})"

    def score(self, ctx: FilterContext, rows: IntArray) -> FloatArray:
        price = ctx.hourly_cmp[rows]
        if not len(rows):
            return np.zeros(0, dtype=np.float64)
        cheapest = int(price.min())
        if cheapest == 0:
            return np.where(price == 0, MAX_SCORE, 0.0)
        # one rounding, as exact as the ratio allows: cheapest * 100 is exact below 2**53.
        # Above it (prices near the int64 nano-unit bound) numerator and denominator round
        # apart, and the cheapest row could score a hair over 100: it scores 100.
        scores: FloatArray = np.minimum((cheapest * MAX_SCORE) / price, MAX_SCORE)
        return scores


class CommitmentScore:
    """Spend where it is already committed: burn a commitment down before paying elsewhere.

    ``remaining`` maps a provider to what is still to be spent under its
    commitment, in the comparison currency (for a fleet, what
    ``commitment_dues`` gives). A row scores the share of its total cost
    (price per hour of the placement times the request's hours) that the
    remaining commitment covers: ``100 * min(1, remaining / total)``. A row of
    a provider with nothing remaining scores 0; a free row of a provider with
    something remaining scores 100.
    """

    name = "commitment"

    def __init__(self, remaining: Mapping[str, Decimal], weight: int = 1) -> None:
        self.weight = valid_weight(weight, self.name)
        for provider, amount in remaining.items():
            if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
                raise ValueError(
                    f"commitment remaining at {provider}: a Decimal >= 0, not {amount!r}"
                )
        self.remaining = {p: to_nano(a, round_half_even=True) for p, a in remaining.items()}

    def __repr__(self) -> str:
        return f"CommitmentScore({len(self.remaining)} providers, weight={self.weight})"

    def score(self, ctx: FilterContext, rows: IntArray) -> FloatArray:
        per_class = np.asarray(
            [self.remaining.get(c.provider, 0) for c in ctx.classes], dtype=np.float64
        )
        left = per_class[ctx.snapshot.offers.col("class_idx")[rows]]
        total = ctx.hourly_cmp[rows] * float(ctx.request.hours)
        covered = np.divide(left, total, out=np.ones(len(rows)), where=total > 0)
        return np.where(left > 0, np.minimum(covered, 1.0) * MAX_SCORE, 0.0)


#: the score phase when none is given: price alone, cheapest first
DEFAULT_SCORES: tuple[ScorePlugin, ...] = (PriceScore(),)
