"""How far apart two samples are: the distances the fidelity replay reports.

- :func:`wasserstein1`: the area between the two empirical distribution functions,
  ``integral |F_a(x) - F_b(x)| dx``, in the samples' unit (seconds of delay): how far,
  on average, the mass of one must move to become the other.
- :func:`ks_statistic`: the two-sample Kolmogorov-Smirnov statistic,
  ``sup_x |F_a(x) - F_b(x)|``, a share between 0 and 1: the largest gap in cumulative
  share at any one value.

Both are exact on the empirical distributions (no binning), computed with NumPy (SciPy
is not a dependency; the tests check closed-form cases).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _cdfs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points where either step function jumps, and both functions at each of them."""
    sa, sb = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if not len(sa) or not len(sb):
        raise ValueError("a distance needs two non-empty samples")
    xs = np.union1d(sa, sb)
    fa = np.searchsorted(sa, xs, side="right") / len(sa)
    fb = np.searchsorted(sb, xs, side="right") / len(sb)
    return xs, fa, fb


def wasserstein1(a: Sequence[float], b: Sequence[float]) -> float:
    """The Wasserstein-1 distance between the empirical distributions of ``a`` and ``b``."""
    xs, fa, fb = _cdfs(a, b)
    return float(np.sum(np.abs(fa - fb)[:-1] * np.diff(xs)))


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of ``a`` and ``b``."""
    _, fa, fb = _cdfs(a, b)
    return float(np.max(np.abs(fa - fb)))


def quantiles(sample: Sequence[float], probabilities: Sequence[float]) -> list[float]:
    """The sample's quantiles (the inverse of its empirical distribution: no interpolation)."""
    s = np.sort(np.asarray(sample, dtype=float))
    if not len(s):
        raise ValueError("quantiles of an empty sample")
    ranks = np.ceil(np.asarray(probabilities, dtype=float) * len(s)).astype(int) - 1
    return [float(v) for v in s[np.clip(ranks, 0, len(s) - 1)]]
