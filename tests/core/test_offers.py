"""A snapshot re-expressed in another comparison currency: exact, half-even, one rate per pair."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.catalog import build_table
from archipel.catalog._sources import OfferRow
from archipel.core import (
    MISSING,
    NANO,
    CatalogSnapshot,
    InputError,
    Jurisdictions,
    convert_nano,
    cross_rate,
)

WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)


@pytest.mark.parametrize(
    ("nano", "rate", "expected"),
    [
        (10 * NANO, "0.857265323618", 8_572_653_236),  # 8.57265323618: the 18 rounds down
        (5, "0.5", 2),  # 2.5: half to even, down
        (7, "0.5", 4),  # 3.5: half to even, up
        (3, "0.5", 2),  # 1.5
        (1, "0.5", 0),  # 0.5
        (1, "0.6", 1),
        (8_800_000_000, "1.1665", 10_265_200_000),
        (0, "1.1665", 0),
    ],
)
def test_convert_nano_rounds_the_exact_product_half_even(
    nano: int, rate: str, expected: int
) -> None:
    assert convert_nano(nano, Decimal(rate)) == expected


@pytest.mark.parametrize(
    ("rate_from", "rate_to", "expected"),
    [
        ("1", "1.1665", "0.857265323618"),  # 0.857265323617659...
        ("1.1665", "1", "1.1665"),
        ("1", "3", "0.333333333333"),
        ("2", "3", "0.666666666667"),
        ("1.25", "1.25", "1"),
        ("1", "8000000000000", "0"),  # below half a 1e-12: zero
    ],
)
def test_cross_rate_keeps_twelve_decimals_half_even(
    rate_from: str, rate_to: str, expected: str
) -> None:
    assert cross_rate(Decimal(rate_from), Decimal(rate_to)) == Decimal(expected)


@given(
    st.integers(min_value=0, max_value=10**13),
    st.decimals(min_value="0.000001", max_value=1000, places=12, allow_nan=False),
)
def test_convert_nano_agrees_with_wide_decimal_arithmetic(nano: int, rate: Decimal) -> None:
    exact = WIDE.multiply(Decimal(nano), rate)  # at most 13 + 16 digits: exact in 80
    assert convert_nano(nano, rate) == int(exact.quantize(Decimal(1), context=WIDE))


def _snapshot(prices: list[tuple[int, int, str]]) -> CatalogSnapshot:
    rows = [
        OfferRow("p", "r", f"z{i}", f"i{i}", "H100", 1.0, 0, None, None, od, spot, cur, "t")
        for i, (od, spot, cur) in enumerate(prices)
    ]
    rates = {"USD": Decimal(1), "EUR": Decimal("1.1665"), "CHF": Decimal("1.2")}
    return CatalogSnapshot(
        offers=build_table(rows, {("p", "r"): "FR"}, rates),
        providers={},
        jurisdictions=Jurisdictions(frozenset(), frozenset(), frozenset(), frozenset()),
        comparison_currency="USD",
        fx_rates=rates,
    )


PRICE = st.one_of(st.just(MISSING), st.integers(min_value=0, max_value=10**12))


@given(st.lists(st.tuples(PRICE, PRICE, st.sampled_from(["USD", "EUR", "CHF"])), min_size=1))
def test_every_converted_price_is_the_native_price_at_the_cross_rate(
    prices: list[tuple[int, int, str]],
) -> None:
    snapshot = _snapshot(prices)
    in_eur = snapshot.in_currency("EUR")
    assert in_eur.comparison_currency == "EUR" and in_eur.fx_rates["EUR"] == 1
    # the rate of X into EUR: X's rate into USD over EUR's, 12 decimals half-even
    cross = {
        code: WIDE.divide(rate, Decimal("1.1665")).quantize(Decimal("1e-12"), context=WIDE)
        for code, rate in snapshot.fx_rates.items()
    }
    assert in_eur.fx_rates == cross
    offers, converted = snapshot.offers, in_eur.offers
    for row in range(len(offers)):
        code = offers.strings[int(offers.col("currency_idx")[row])]
        for native, cmp in (("price", "cmp_price"), ("spot_price", "cmp_spot_price")):
            value = int(offers.col(native)[row])
            want = (
                MISSING
                if value == MISSING
                else int(WIDE.multiply(value, cross[code]).quantize(Decimal(1), context=WIDE))
            )
            assert int(converted.col(cmp)[row]) == want
    for name in ("price", "spot_price", "class_idx", "currency_idx"):
        assert (converted.col(name) == offers.col(name)).all()


def test_the_same_currency_is_the_same_snapshot_and_an_unknown_one_is_refused() -> None:
    snapshot = _snapshot([(NANO, MISSING, "EUR")])
    assert snapshot.in_currency("USD") is snapshot
    with pytest.raises(InputError, match=r"--currency: .* 'GBP'; the catalog knows CHF, EUR, USD"):
        snapshot.in_currency("GBP")
