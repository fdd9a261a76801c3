"""The fixed-point columns: every amount of up to 15 decimals goes in and out exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.ledger import join_fixed, split_fixed


@settings(max_examples=examples(200))
@given(st.decimals(min_value=-(10**12), max_value=10**12, places=15, allow_nan=False))
def test_split_then_join_is_the_identity(value: Decimal) -> None:
    micro, femto = split_fixed(value)
    assert 0 <= femto < 10**9
    assert join_fixed(micro, femto) == value


CASES = [
    ("zero", "0", (0, 0)),
    ("one unit", "1", (1_000_000, 0)),
    ("a micro-unit", "0.000001", (1, 0)),
    ("a femto-unit", "0.000000000000001", (0, 1)),
    ("both parts", "2.500000000000007", (2_500_000, 7)),
    ("negative keeps a positive remainder", "-0.000000000000001", (-1, 999_999_999)),
    ("trailing zeros past 15 decimals", "0.1000000000000000000", (100_000, 0)),
]


@pytest.mark.parametrize(("text", "parts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_split_fixed(text: str, parts: tuple[int, int]) -> None:
    assert split_fixed(Decimal(text)) == parts


def test_more_than_15_decimals_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="more than 15 decimals"):
        split_fixed(Decimal("0.0000000000000001"))


def test_sums_of_parts_join_to_the_sum() -> None:
    # 0.999999999999999 + 0.000000000000001 = 1: the femto parts carry into micro-units
    a, b = split_fixed(Decimal("0.999999999999999")), split_fixed(Decimal("0.000000000000001"))
    assert join_fixed(a[0] + b[0], a[1] + b[1]) == Decimal(1)
    assert str(join_fixed(100_000_000, 0)) == "100"
