"""Prices are exact: decimal text <-> integer nano-units, never floats."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from archipel.core import MISSING, NANO, Amount, Money, nano_to_decimal, parse_price, to_nano


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


# --- to_nano: the one conversion into nano-units -------------------------------------


@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        (Decimal("2.675"), 2_675_000_000),
        (Decimal("0.1") + Decimal("0.2"), 300_000_000),
        (Decimal("0.000000001"), 1),
        (Decimal("1.0000000000"), 1_000_000_000),
        (Decimal("1E+3"), 1_000_000_000_000),
        (Decimal("-0.000000001"), -1),
        (Decimal("123456789.123456789"), 123_456_789_123_456_789),
        (Decimal("9223372036.854775807"), 2**63 - 1),
        (7, 7_000_000_000),
    ],
    ids=[
        "2.675 (a float makes it 2.67499...)",
        "0.1 + 0.2 in decimals",
        "one nano-unit",
        "trailing zeros are not precision",
        "exponent form",
        "negative",
        "18 significant digits",
        "the largest int64",
        "an int",
    ],
)
def test_to_nano_is_exact(amount: Decimal | int, nano: int) -> None:
    assert to_nano(amount) == nano


@pytest.mark.parametrize(
    ("amount", "error", "match"),
    [
        (Decimal("0.0000000001"), ValueError, "0.0000000001 has more than 9 decimals"),
        (Decimal("2.6750000001"), ValueError, "round it to at most 9 decimals"),
        (Decimal("9223372036.854775808"), ValueError, "too large"),
        (Decimal("1E+400"), ValueError, "too large"),
        (Decimal("NaN"), ValueError, "not a finite amount"),
        (Decimal("-Infinity"), ValueError, "not a finite amount"),
        (0.1 + 0.2, TypeError, "never float"),
        (True, TypeError, "never bool"),
    ],
    ids=[
        "a tenth of a nano-unit",
        "sub-nano digit",
        "beyond int64",
        "huge exponent",
        "NaN",
        "infinity",
        "float",
        "bool",
    ],
)
def test_to_nano_refuses_what_it_cannot_hold_exactly(
    amount: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        to_nano(amount)  # type: ignore[arg-type]


NINE_PLACES = st.decimals(
    min_value=-(10**9), max_value=10**9, places=9, allow_nan=False, allow_infinity=False
)


@given(NINE_PLACES)
def test_nine_decimals_convert_exactly_and_round_trip(value: Decimal) -> None:
    nano = to_nano(value)
    assert Fraction(nano, NANO) == Fraction(value)  # not one nano-unit lost
    assert nano_to_decimal(nano) == value
    assert to_nano(value, round_half_even=True) == nano  # nothing to round


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-30, max_value=10),
)
def test_any_notation_of_an_exact_amount_converts_exactly(coefficient: int, exponent: int) -> None:
    value = Decimal(coefficient).scaleb(exponent)
    exact = Fraction(value) * NANO
    if exact.denominator == 1 and abs(exact) <= 2**63 - 1:
        assert to_nano(value) == exact


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=14, allow_nan=False))
def test_finer_amounts_are_refused_or_rounded_half_even_never_truncated(value: Decimal) -> None:
    exact = Fraction(value) * NANO
    assume(exact.denominator != 1)
    with pytest.raises(ValueError, match="more than 9 decimals"):
        to_nano(value)
    nano = to_nano(value, round_half_even=True)
    assert abs(exact - nano) <= Fraction(1, 2)  # the nearest nano-unit
    if abs(exact - nano) == Fraction(1, 2):
        assert nano % 2 == 0  # ties to even


@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        (Decimal("0.0000000005"), 0),
        (Decimal("0.0000000015"), 2),
        (Decimal("0.0000000025"), 2),
        (Decimal("0.00000000250001"), 3),
        (Decimal("-0.0000000015"), -2),
        (Decimal("1E-30"), 0),
    ],
    ids=["half to even 0", "half to even 2", "half stays 2", "above half", "negative", "tiny"],
)
def test_computed_amounts_round_half_even(amount: Decimal, nano: int) -> None:
    assert to_nano(amount, round_half_even=True) == nano


# --- Amount: money at the edge --------------------------------------------------------

_amount = TypeAdapter(Amount)


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (2.675, Decimal("2.675")),
        (40, Decimal(40)),
        ("123456789.123456789", Decimal("123456789.123456789")),
        ("0.50", Decimal("0.50")),
        (Decimal("1E-9"), Decimal("1E-9")),
    ],
    ids=["plain 0.1", "plain 2.675", "plain integer", "quoted 18 digits", "quoted", "Decimal"],
)
def test_an_amount_is_the_decimal_written(given_value: object, expected: Decimal) -> None:
    value = _amount.validate_python(given_value)
    assert isinstance(value, Decimal) and value == expected


@pytest.mark.parametrize(
    ("given_value", "match"),
    [
        (0.1 + 0.2, 'more digits than a plain number keeps exactly .* "0.30000000000000004"'),
        (123456789.123456789, "write it as a quoted string"),
        ("0.0000000001", "more than 9 decimals"),
        (1e-10, "more than 9 decimals"),
        (-1, "greater than or equal to 0"),
        (2e9, "less than or equal to 1000000000"),
        (float("nan"), "finite"),
        ("Infinity", "finite"),
    ],
    ids=[
        "0.1 + 0.2 as a float",
        "more digits than a double holds",
        "quoted sub-nano",
        "plain sub-nano",
        "negative",
        "above the bound",
        "NaN",
        "infinity",
    ],
)
def test_an_amount_refuses_what_it_would_change(given_value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        _amount.validate_python(given_value)


def test_json_numbers_and_strings_are_both_amounts() -> None:
    assert _amount.validate_json("2.675") == Decimal("2.675")
    assert _amount.validate_json('"123456789.123456789"') == Decimal("123456789.123456789")
