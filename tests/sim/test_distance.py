"""The replay's distances against cases whose answer is known in closed form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.sim._distance import ks_statistic, quantiles, wasserstein1

samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40)


@pytest.mark.parametrize(
    ("a", "b", "w1", "ks"),
    [
        ([3.0], [3.0], 0.0, 0.0),
        ([0.0], [5.0], 5.0, 1.0),
        ([5.0], [0.0], 5.0, 1.0),
        ([0.0, 10.0], [0.0, 10.0, 0.0, 10.0], 0.0, 0.0),
        # half the mass moves 10: W1 = 0.5 x 10; the CDFs differ by 0.5 on [0, 10)
        ([0.0, 0.0], [0.0, 10.0], 5.0, 0.5),
        # uniform on 4 points shifted by 1: W1 = 1; the CDFs differ by 1/4 at each point
        ([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], 1.0, 0.25),
        # disjoint supports: KS 1, W1 = difference of the means
        ([0.0, 1.0], [10.0, 13.0], 11.0, 1.0),
        # unequal sizes: F_a = 1/3 on [0, 6), F_b = 1/2 on [2, 6): |F_a - F_b| is 1/3 on
        # [0, 2) and 1/6 on [2, 6): W1 = 2/3 + 4/6 = 4/3
        ([0.0, 6.0, 6.0], [2.0, 6.0], 4 / 3, 1 / 3),
    ],
    ids=[
        "same point",
        "two point masses",
        "order does not matter",
        "repeated sample",
        "half moves",
        "shift by one",
        "disjoint",
        "unequal sizes",
    ],
)
def test_closed_form_cases(a: list[float], b: list[float], w1: float, ks: float) -> None:
    assert wasserstein1(a, b) == pytest.approx(w1)
    assert ks_statistic(a, b) == pytest.approx(ks)


@given(samples, st.floats(-1e3, 1e3, allow_nan=False))
def test_a_shift_moves_w1_by_the_shift(a: list[float], c: float) -> None:
    """Every point moved by ``c``: the distance is ``|c|`` (the mean's shift)."""
    assert wasserstein1(a, [x + c for x in a]) == pytest.approx(abs(c), abs=1e-6)


@given(samples, samples)
def test_distances_are_symmetric_bounded_and_zero_on_themselves(
    a: list[float], b: list[float]
) -> None:
    assert wasserstein1(a, a) == 0.0
    assert ks_statistic(a, a) == 0.0
    assert wasserstein1(a, b) == pytest.approx(wasserstein1(b, a))
    assert ks_statistic(a, b) == ks_statistic(b, a)
    assert 0.0 <= ks_statistic(a, b) <= 1.0
    # W1 is at least the gap between the means, and at most the widest gap of all
    assert wasserstein1(a, b) >= abs(sum(a) / len(a) - sum(b) / len(b)) - 1e-6 * (
        1 + max(map(abs, a + b))
    )
    assert wasserstein1(a, b) <= max(a + b) - min(a + b) + 1e-9


def test_quantiles_invert_the_empirical_distribution() -> None:
    assert quantiles([4.0, 1.0, 3.0, 2.0], [0.0, 0.25, 0.26, 0.5, 0.75, 1.0]) == [
        1.0, 1.0, 2.0, 2.0, 3.0, 4.0,
    ]  # fmt: skip


def test_an_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        wasserstein1([], [1.0])
    with pytest.raises(ValueError, match="empty sample"):
        quantiles([], [0.5])
