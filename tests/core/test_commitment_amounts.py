"""Commitments are sized as buyers sign them: hundreds of billions, exact to the cent.

The seed case of the product is one buyer with $38B, $250B and $300B committed
to three clouds; a fleet file must be able to say so.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from archipel.core import SpecError, parse_fleet

PERIOD = {"start": "2026-01-01", "end": "2033-01-01"}
WORKLOAD = {"name": "w", "kind": "batch", "resources": {"accelerators": "H100:8"}}


def fleet(**commitment: Any) -> dict[str, Any]:
    return {
        "name": "lab",
        "horizon": {"start": "2026-12-01", "end": "2027-01-01"},
        "workloads": [WORKLOAD],
        "commitments": [{"provider": "oci", "period": PERIOD, **commitment}],
    }


@pytest.mark.parametrize(
    ("amount", "spent", "want"),
    [
        (300_000_000_000, 0, Decimal("300000000000")),
        ("250000000000.25", "1000000000.5", Decimal("250000000000.25")),
        ("10000000000000", 0, Decimal("10000000000000")),
        ("0.000000001", 0, Decimal("0.000000001")),
    ],
    ids=["$300B", "$250B and cents", "the bound", "one nano-unit"],
)
def test_a_commitment_is_kept_exactly(amount: Any, spent: Any, want: Decimal) -> None:
    spec = parse_fleet(fleet(amount=amount, spent=spent))
    assert spec.commitments[0].amount == want


@pytest.mark.parametrize(
    ("commitment", "problem"),
    [
        ({"amount": 0}, "commitments[0].amount: Input should be greater than 0"),
        (
            {"amount": "10000000000000.01"},
            "commitments[0].amount: Input should be less than or equal to 10000000000000",
        ),
        (
            {"amount": "1.0000000001"},
            "commitments[0].amount: 1.0000000001 has more than 9 decimals",
        ),
        (
            {"amount": 10, "spent": -1},
            "commitments[0].spent: Input should be greater than or equal to 0",
        ),
        ({"amount": float("inf")}, "commitments[0].amount:"),
    ],
    ids=["zero", "over the bound", "ten decimals", "negative spent", "infinite"],
)
def test_a_commitment_out_of_bounds_is_refused(commitment: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_fleet(fleet(**commitment))
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_what_is_due_of_a_seven_year_commitment_is_its_share_of_the_horizon() -> None:
    spec = parse_fleet(fleet(amount=300_000_000_000))
    # 31 days of the 2,223 from the horizon's start to the period's end (6 years of 365 days,
    # two leap days, 31 days of December 2032)
    due = spec.commitments[0].due_in(spec.horizon)
    assert due == Decimal(300_000_000_000) * 31 / 2223
