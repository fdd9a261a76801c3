"""The forecast: a linear trend with a prediction interval, and its back-test against baselines."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archipel.ledger._forecast import backtest, forecast_series, to_decimal, widening, z_of

money = st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False)


def test_a_known_fit_by_hand() -> None:
    """y = 100, 300, 200 at x = 0, 1, 2: slope 50, intercept 150; residuals -50, 100, -50.

    s^2 = 15,000 / (3 - 2); one step ahead (x = 3): 300, and
    V = 1 + 1/3 + (3 - 1)^2 / 2 = 10/3, so the half-width is z * sqrt(50,000).
    """
    p = forecast_series([Decimal(100), Decimal(300), Decimal(200)], 1, level=0.8)
    assert p.model == "trend"
    assert p.mean == (Fraction(300),)
    half = Decimal("1.281552") * Decimal(50_000).sqrt()
    assert abs(to_decimal(p.high[0]) - (300 + half)) < Decimal("1e-6")
    assert abs(to_decimal(p.low[0]) - (300 - half)) < Decimal("1e-6")


def test_the_band_widens_with_the_horizon() -> None:
    p = forecast_series([Decimal(v) for v in (100, 130, 90, 120, 110, 140)], 12)
    widths = [h - lo for lo, h in zip(p.low, p.high, strict=True)]
    assert widths == sorted(widths)
    assert widths[-1] > widths[0]


def test_a_falling_trend_never_forecasts_negative_spend() -> None:
    p = forecast_series([Decimal(v) for v in (300, 200, 100)], 5)
    # 0 from the 4th period on (the line is at 0 then below)
    assert p.mean == (Fraction(0),) * 5
    assert all(lo >= 0 for lo in p.low)


def test_one_period_gives_a_wide_flat_band() -> None:
    p = forecast_series([Decimal(100)], 1, level=0.8)
    assert p.model == "flat"
    assert p.mean == (Fraction(100),)
    # s = 50 (half the spend); V = 1 + 1/1 = 2
    half = Decimal("1.281552") * 50 * Decimal(2).sqrt()
    assert abs(to_decimal(p.high[0]) - (100 + half)) < Decimal("1e-6")


@pytest.mark.parametrize(
    ("level", "z"),
    [(0.8, "1.281552"), (0.9, "1.644854"), (0.95, "1.959964")],
)
def test_normal_quantiles(level: float, z: str) -> None:
    assert z_of(level) == Fraction(z)


@settings(max_examples=60, deadline=None)
@given(st.lists(money, min_size=1, max_size=30), st.integers(min_value=1, max_value=48))
def test_the_interval_holds_the_mean_and_never_shrinks_below_spend(
    history: list[Decimal], steps: int
) -> None:
    p = forecast_series(history, steps)
    assert len(p.mean) == steps
    for lo, mean, hi in zip(p.low, p.mean, p.high, strict=True):
        assert 0 <= lo <= mean <= hi
    assert list(p.mean) == sorted(p.mean)  # cumulative spend does not decrease
    assert list(p.low) == sorted(p.low)


@settings(max_examples=60, deadline=None)
@given(money, st.integers(min_value=2, max_value=30), st.integers(min_value=1, max_value=60))
def test_a_constant_history_forecasts_the_exact_line(
    spend: Decimal, months: int, steps: int
) -> None:
    p = forecast_series([spend] * months, steps)
    expected = [Fraction(spend) * k for k in range(1, steps + 1)]
    assert list(p.mean) == expected  # exact, no float on the way
    assert list(p.low) == expected == list(p.high)  # no noise: no band
    assert to_decimal(p.mean[-1]) == spend * steps  # at most 9 decimals: exact as a Decimal


def test_backtest_on_a_straight_line_by_hand() -> None:
    """1, 2, ..., 8 from the 6th period: origins 6 and 7, scored at the end (36 in all).

    last value: 21 + 2*6 = 33 (off by 3) and 28 + 7 = 35 (off by 1): MAE 2;
    linear burn: 21 + 3.5*2 = 28 (off by 8) and 28 + 4 = 32 (off by 4): MAE 6;
    the trend is exact, and its (empty) band holds the actual.
    """
    scores = {s.method: s for s in backtest([Decimal(v) for v in range(1, 9)])}
    assert scores["trend"].mae == 0 and scores["trend"].coverage == 1
    assert scores["last value"].mae == 2
    assert scores["last value"].mape == Decimal("5.56")  # (3 + 1) / 36 / 2
    assert scores["linear burn"].mae == 6
    assert scores["linear burn"].mape == Decimal("16.67")  # (8 + 4) / 36 / 2
    assert scores["last value"].coverage is None
    assert all(s.origins == 2 for s in scores.values())


def test_backtest_a_fixed_horizon() -> None:
    scores = backtest([Decimal(5)] * 10, ahead=3)
    assert [s.origins for s in scores] == [2, 2, 2]  # origins 6 and 7 have 3 periods after
    assert all(s.mae == 0 for s in scores)


def test_a_history_the_line_misses_widens_the_band() -> None:
    """Quadratic growth: a line fitted at any origin under-forecasts by far more than its
    residuals claim, so the band is widened; noise around a line is not."""
    curved = [float(t * t) for t in range(1, 25)]
    assert widening(curved, 0.8, 12) > 2
    line = [100.0 + 10 * t + (5 if t % 2 else -5) for t in range(24)]
    assert widening(line, 0.8, 12) < 1.5
    assert widening([1.0, 2.0], 0.8, 12) == 1.0  # too few errors to judge: as claimed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=40))
def test_widening_is_bounded(history: list[float]) -> None:
    assert 1.0 <= widening(history, 0.8, 12) <= 10.0
