"""Where spend is heading: a linear trend with a prediction interval, and its back-test.

The model (docs/commitments.md, Forecast, has the why and the measured error):

- the spend of each whole period (a month for commitments) is ``y = a + b x``
  plus independent noise of one variance, fitted by ordinary least squares
  on the last ``window`` periods (twelve months: a step change older than a
  year is forgotten). With fewer than three periods the slope is not
  fitted: the spend is taken as flat at its mean;
- the forecast of each future period is the line's value (never below
  zero), times the share of the period still to come; the position at a
  future date is the spend to date plus their sum, in exact rational
  arithmetic, rounded half-even to the nano-unit once;
- the interval of a cumulative position is ``± z s sqrt(V)``, ``s`` the
  residuals' standard deviation, ``z`` the normal quantile of the level and
  ``V = sum w_j^2 + (sum w_j)^2 / n + (sum w_j (x_j - mean x))^2 / Sxx``: the
  noise of each future period plus the uncertainty of the fitted line, so it
  widens with the horizon. A single period gives ``s`` as half its spend.
  The lower bound never falls below the spend to date, nor below an earlier
  lower bound (cumulative spend does not decrease);
- that interval assumes the line is right and only noise is not. It is
  widened by what the history itself shows (:func:`widening`): the model is
  re-fitted at its recent origins, its errors divided by the deviation it
  claimed, and ``z`` is scaled by how much larger than claimed the errors
  were (never narrower, at most ten times wider).

Nothing here is float but ``z`` and the back-test's error ratios; money is
:class:`~fractions.Fraction` while computed and :class:`~decimal.Decimal` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from statistics import NormalDist

import numpy as np

#: periods the trend is fitted over (the most recent ones)
WINDOW = 12
#: the interval's default coverage
LEVEL = 0.8
#: periods of history a back-test origin needs at least
MIN_HISTORY = 6
#: the most recent origins the interval is calibrated on, and the fewest errors it needs
CALIBRATION_ORIGINS = 24
CALIBRATION_ERRORS = 8
#: the most the calibration widens the interval
MAX_WIDENING = 10.0
METHOD = (
    "linear trend (OLS) over the last {window} months; residual prediction interval "
    "widened by the history's own back-test errors"
)

_NANO = Decimal(1).scaleb(-9)


@dataclass(frozen=True, slots=True)
class Projection:
    """Cumulative spend to come after each future period: ``mean`` and the interval."""

    mean: tuple[Fraction, ...]
    low: tuple[Fraction, ...]
    high: tuple[Fraction, ...]
    model: str  # "trend" (a fitted slope), "flat" (fewer than three periods)


def to_decimal(value: Fraction) -> Decimal:
    """A computed amount as a Decimal, rounded half-even to the nano-unit."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(_NANO)


def _sqrt(value: Fraction) -> Fraction:
    with localcontext() as ctx:
        ctx.prec = 40
        root = (Decimal(value.numerator) / Decimal(value.denominator)).sqrt()
    return Fraction(root)


def z_of(level: float) -> Fraction:
    """The two-sided normal quantile for ``level`` (0.8: 1.2816), as an exact fraction."""
    if not 0 < level < 1:
        raise ValueError(f"level {level} must be between 0 and 1")
    return Fraction(str(round(NormalDist().inv_cdf((1 + level) / 2), 6)))


def project(
    history: Sequence[tuple[int, Fraction]],
    future: Sequence[tuple[int, Fraction]],
    *,
    level: float = LEVEL,
    window: int = WINDOW,
    calibrate: bool = True,
) -> Projection:
    """The cumulative spend to come over ``future`` from ``history``.

    ``history`` holds ``(x, spend)`` of whole periods in order (``x`` the
    period's index); ``future`` holds ``(x, share)``: each period to come and
    the share of it that is to come (1 for a whole one). ``history`` must not
    be empty.
    """
    if not history:
        raise ValueError("a projection needs at least one period of history")
    if window < 1:
        raise ValueError("window must be at least 1")
    points = list(history)[-window:]
    n = len(points)
    xs = [Fraction(x) for x, _ in points]
    ys = [y for _, y in points]
    x_bar = sum(xs, Fraction(0)) / n
    y_bar = sum(ys, Fraction(0)) / n
    sxx = sum(((x - x_bar) ** 2 for x in xs), Fraction(0))
    if n >= 3 and sxx:
        slope = sum(((x - x_bar) * (y - y_bar) for x, y in zip(xs, ys, strict=True)), Fraction(0))
        slope /= sxx
        model = "trend"
        dof = n - 2
    else:
        slope = Fraction(0)
        model = "flat"
        dof = n - 1
    intercept = y_bar - slope * x_bar
    if dof > 0:
        residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
        variance = sum((e * e for e in residuals), Fraction(0)) / dof
    else:  # one period: a wide band, half its spend either way per period
        variance = (y_bar / 2) ** 2
    z = z_of(level)
    if calibrate:
        z *= Fraction(str(round(widening([float(y) for _, y in history], level, window), 6)))
    mean: list[Fraction] = []
    low: list[Fraction] = []
    high: list[Fraction] = []
    total = Fraction(0)
    squares = Fraction(0)
    shares = Fraction(0)
    lever = Fraction(0)
    floor = Fraction(0)
    for x, share in future:
        total += share * max(Fraction(0), intercept + slope * x)
        squares += share * share
        shares += share
        lever += share * (x - x_bar)
        spread = squares + shares * shares / n
        if model == "trend":
            spread += lever * lever / sxx
        half = z * _sqrt(variance * spread)
        floor = max(floor, total - half)
        mean.append(total)
        low.append(floor)
        high.append(total + half)
    return Projection(tuple(mean), tuple(low), tuple(high), model)


def widening(values: Sequence[float], level: float, window: int) -> float:
    """How much wider than the residual interval the history says the interval must be.

    The model is fitted at each of the last :data:`CALIBRATION_ORIGINS` origins
    of the history itself (three periods known at least) and its cumulative
    error at every horizon up to the end of the history is divided by the
    standard deviation the model gave it. The ``level`` quantile of these
    standardised errors over ``z`` is the widening (at least 1, at most
    :data:`MAX_WIDENING`); with fewer than :data:`CALIBRATION_ERRORS` errors
    it is 1. A statistic, not money: floats are fine here.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    found: list[np.ndarray] = []
    for t in range(max(3, n - CALIBRATION_ORIGINS), n):
        known = y[max(0, t - window) : t]
        m = len(known)
        x = np.arange(t - m, t, dtype=float)
        x_bar = x.mean()
        sxx = float(((x - x_bar) ** 2).sum())
        slope = float(((x - x_bar) * (known - known.mean())).sum() / sxx) if m >= 3 else 0.0
        intercept = known.mean() - slope * x_bar
        dof = m - 2 if m >= 3 else m - 1
        residuals = known - (intercept + slope * x)
        variance = float((residuals**2).sum() / dof) if dof > 0 else (known.mean() / 2) ** 2
        ahead = np.arange(t, n, dtype=float)
        mean = np.cumsum(np.maximum(0.0, intercept + slope * ahead))
        k = np.arange(1, len(ahead) + 1, dtype=float)
        spread = k + k * k / m
        if m >= 3:
            spread += np.cumsum(ahead - x_bar) ** 2 / sxx
        sd = np.sqrt(variance * spread)
        actual = np.cumsum(y[t:n])
        ok = sd > 0
        found.append(np.abs(actual[ok] - mean[ok]) / sd[ok])
    errors = np.concatenate(found) if found else np.empty(0)
    if len(errors) < CALIBRATION_ERRORS:
        return 1.0
    z = NormalDist().inv_cdf((1 + level) / 2)
    return float(min(MAX_WIDENING, max(1.0, np.quantile(errors, level) / z)))


def forecast_series(
    spend: Sequence[Decimal], steps: int, *, level: float = LEVEL, window: int = WINDOW
) -> Projection:
    """The cumulative spend of the next ``steps`` whole periods after ``spend`` (one per period)."""
    history = [(i, Fraction(v)) for i, v in enumerate(spend)]
    future = [(len(spend) + k, Fraction(1)) for k in range(steps)]
    return project(history, future, level=level, window=window)


# -- the back-test -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """How one method did over a back-test's origins: errors of the forecast position."""

    method: str
    origins: int
    mae: Decimal  # mean absolute error, in the series' currency
    mape: Decimal  # mean absolute percentage error, in percent
    coverage: Decimal | None  # share of origins whose interval held the actual (None: no interval)


def backtest(
    spend: Sequence[Decimal],
    *,
    ahead: int | None = None,
    min_history: int = MIN_HISTORY,
    level: float = LEVEL,
    window: int = WINDOW,
) -> list[Score]:
    """Rolling-origin back-test of the trend against two naive baselines, on one history.

    At each origin ``t`` (``min_history`` periods known) each method forecasts
    the cumulative position ``ahead`` periods on (``None``: at the end of the
    series, the term end) and is scored against the actual position:

    - ``trend``: :func:`forecast_series`;
    - ``last value``: the last period's spend carried forward;
    - ``linear burn``: the average spend per period to date carried forward.
    """
    n = len(spend)
    rows: dict[str, list[tuple[Fraction, Fraction, bool | None]]] = {
        "trend": [],
        "last value": [],
        "linear burn": [],
    }
    values = [Fraction(v) for v in spend]
    for t in range(min_history, n):
        steps = (n - t) if ahead is None else ahead
        if steps < 1 or t + steps > n:
            continue
        known = values[:t]
        to_date = sum(known, Fraction(0))
        actual = to_date + sum(values[t : t + steps], Fraction(0))
        p = forecast_series(spend[:t], steps, level=level, window=window)
        inside = to_date + p.low[-1] <= actual <= to_date + p.high[-1]
        rows["trend"].append((to_date + p.mean[-1], actual, inside))
        rows["last value"].append((to_date + known[-1] * steps, actual, None))
        rows["linear burn"].append((to_date + to_date / t * steps, actual, None))
    return [_score(method, found) for method, found in rows.items()]


def _score(method: str, found: list[tuple[Fraction, Fraction, bool | None]]) -> Score:
    if not found:
        return Score(method, 0, Decimal(0), Decimal(0), None)
    errors = [abs(f - a) for f, a, _ in found]
    mae = sum(errors, Fraction(0)) / len(found)
    ratios = [e / a for e, (_, a, _) in zip(errors, found, strict=True) if a]
    mape = 100 * sum(ratios, Fraction(0)) / len(ratios) if ratios else Fraction(0)
    held = [inside for _, _, inside in found if inside is not None]
    coverage = (
        to_decimal(Fraction(sum(held), len(held))).quantize(Decimal("0.001")) if held else None
    )
    return Score(
        method,
        len(found),
        to_decimal(mae).quantize(Decimal("0.01")),
        to_decimal(mape).quantize(Decimal("0.01")),
        coverage,
    )
