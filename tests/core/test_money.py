"""Prices are exact: decimal text <-> integer nano-units, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.core import MISSING, Money, nano_to_decimal, parse_price


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("30.09784", 30_097_840_000),
        ("7.520500", 7_520_500_000),
        ("0", 0),
        ("", MISSING),
        ("  ", MISSING),
        ("1.000000001", 1_000_000_001),
    ],
)
def test_parse_price(text: str, nano: int) -> None:
    assert parse_price(text) == nano


@pytest.mark.parametrize("text", ["-1", "abc", "1e400x", "0.0000000001", "NaN", "Infinity"])
def test_parse_price_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="price"):
        parse_price(text)


@given(st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False))
def test_round_trip_is_exact(value: Decimal) -> None:
    assert nano_to_decimal(parse_price(str(value))) == value


def test_money_refuses_floats() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]


def test_money_needs_an_iso_currency() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(Decimal(1), "dollars")
