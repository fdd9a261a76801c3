"""The framework: the engine's phases, the plugin interface of each, and their runners.

A plan goes through these phases, in this order (``docs/architecture.md``
draws them):

- ``prefilter``: one plugin narrows the offer table to the rows worth
  looking at (the hardware filter: the slices of the requested accelerator
  models). Every other row is rejected by that plugin's own ``filter``.
- ``filter``: each plugin answers yes or no for every candidate row and can
  say why it turned a row down (:class:`FilterResult`). :func:`run_filters`
  is the one runner: ``plan`` counts and itemises through it, ``explain``
  runs every plugin on one offer through it, ``options`` keeps what it keeps.
- ``score``: each plugin gives every feasible row a normalised score from 0
  (worst) to 100 (best); :func:`run_scores` checks the range and combines
  them, weighted, into one total per row (``_scores.py`` holds the plugins).
- ``rank``: :func:`rank_order` sorts the feasible rows by total score, best
  first, then by the deterministic tie-break keys.

Plugins are vectorised: they see candidate rows of the offer table as an
index array and answer one array over them. Each has a stable ``name``; a
score plugin also has a ``weight``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from archipel.core import CatalogSnapshot, OfferClass, Rejection
from archipel.core._offers import BoolArray, IntArray
from archipel.placement._request import PlacementRequest
from archipel.policy import DataClass

FloatArray = NDArray[np.float64]

#: the range every score plugin answers in: 0 is the worst row, 100 the best
MAX_SCORE = 100.0


@dataclass(frozen=True, slots=True)
class FilterContext:
    """What a plugin may look at: the snapshot, the request, and derived prices."""

    snapshot: CatalogSnapshot
    request: PlacementRequest
    data_class: DataClass
    policy_verdicts: Sequence[tuple[Rejection, ...]]  # per class, every failing rule
    hourly_cmp: IntArray  # per row: price per hour of the whole placement, comparison currency

    @property
    def classes(self) -> Sequence[OfferClass]:
        return self.snapshot.offers.classes

    def where(self, row: int) -> str:
        offer_class = self.classes[int(self.snapshot.offers.col("class_idx")[row])]
        instance = self.snapshot.offers.strings[int(self.snapshot.offers.col("instance_idx")[row])]
        return f"{offer_class.provider}/{offer_class.region or '-'}/{instance}"


@dataclass(frozen=True, slots=True)
class FilterResult:
    """``keep`` for each candidate row, and how to explain the others.

    Exactly one of ``rejection`` (row filters: one rejection per row) and
    ``class_rejections`` (class filters: per equivalence class, every
    rejection, the empty tuple when the class is kept) is set.
    """

    keep: BoolArray
    rejection: Callable[[int], Rejection] | None = None
    class_rejections: Sequence[tuple[Rejection, ...]] | None = None

    def reasons(self, ctx: FilterContext, row: int) -> tuple[Rejection, ...]:
        """Every rejection of one row this filter turned down, the one it is counted under first."""
        if self.rejection is not None:
            return (self.rejection(row),)
        assert self.class_rejections is not None
        found = self.class_rejections[int(ctx.snapshot.offers.col("class_idx")[row])]
        assert found, "reasons() called for a row the filter kept"
        return found

    def why(self, ctx: FilterContext, row: int) -> Rejection:
        """The rejection one row is counted under."""
        return self.reasons(ctx, row)[0]


class FilterPlugin(Protocol):
    """The filter phase; ``name`` is stable and appears in every rejection count."""

    @property
    def name(self) -> str: ...

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult: ...


@runtime_checkable
class PreFilterPlugin(Protocol):
    """A filter that also runs in the prefilter phase: it narrows the table first.

    ``candidates`` gives, sorted, every row its ``filter`` might keep; the
    engine counts the others as this plugin's rejections without filtering
    them one by one.
    """

    @property
    def name(self) -> str: ...

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult: ...

    def candidates(self, ctx: FilterContext) -> IntArray: ...


class FilterObserver(Protocol):
    """Told of every row a filter turns down (counting, itemising, explaining)."""

    def rejected(
        self, ctx: FilterContext, plugin: FilterPlugin, result: FilterResult, rows: IntArray
    ) -> None: ...


def run_filters(
    ctx: FilterContext,
    rows: IntArray,
    plugins: Sequence[FilterPlugin],
    observer: FilterObserver | None = None,
    *,
    every: bool = False,
) -> IntArray:
    """The filter phase: the rows every plugin keeps, in their order.

    As a chain (the default) each plugin sees only the rows the ones before
    it kept, so a row is reported once, under the first plugin that turned it
    down. With ``every`` each plugin sees all the rows, so the observer hears
    every plugin that turns a row down (what ``explain`` shows).
    """
    kept = rows  # the chain's survivors
    keep_all = np.ones(len(rows), dtype=np.bool_)  # with ``every``: kept by each plugin so far
    for plugin in plugins:
        if len(kept) == 0 and not every:
            break
        seen = rows if every else kept
        result = plugin.filter(ctx, seen)
        if observer is not None and not result.keep.all():
            observer.rejected(ctx, plugin, result, seen[~result.keep])
        if every:
            keep_all &= result.keep
        else:
            kept = kept[result.keep]
    return rows[keep_all] if every else kept


def find_prefilter(plugins: Sequence[FilterPlugin]) -> PreFilterPlugin | None:
    """The one plugin of a chain that also narrows the candidates, if any.

    Raises ``ValueError`` for two: their candidate sets would have to be
    intersected and the rows outside credited to one of them, which no chain
    needs yet.
    """
    found = [p for p in plugins if isinstance(p, PreFilterPlugin)]
    if len(found) > 1:
        raise ValueError(f"two prefilter plugins: {[p.name for p in found]}; keep one")
    return found[0] if found else None


def first_outside(candidates: IntArray) -> int:
    """The first row of the table not among ``candidates`` (sorted, distinct)."""
    if not len(candidates) or candidates[0] != 0:
        return 0
    gaps = np.nonzero(candidates != np.arange(len(candidates)))[0]
    return int(gaps[0]) if len(gaps) else len(candidates)


class ScorePlugin(Protocol):
    """The score phase: a normalised score for each feasible row, with a weight.

    ``score`` answers, for the rows it is given (every feasible row of one
    request), a float from 0 to 100, where 100 is the best of them: the
    plugin normalises over those rows itself, since it sees them all at
    once. A score outside that range is a fault (:func:`run_scores` raises).
    ``weight`` is a positive integer: how much the plugin counts in the total.
    """

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...

    def score(self, ctx: FilterContext, rows: IntArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class PluginScore:
    """One plugin's part of a row's score."""

    plugin: str
    score: float  # normalised, 0..100
    weight: int


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """A row's total score and each plugin's part of it, in plugin order.

    ``total`` is the weighted mean of the plugins' scores, so it is in 0..100
    too: the sum of ``score * weight`` over the sum of the weights.
    """

    total: float
    plugins: tuple[PluginScore, ...]


@dataclass(frozen=True, slots=True)
class Scores:
    """The score phase's answer: per plugin and in total, one score per scored row."""

    plugins: tuple[ScorePlugin, ...]
    per_plugin: tuple[FloatArray, ...]
    total: FloatArray

    def breakdown(self, i: int) -> ScoreBreakdown:
        """The breakdown of the ``i``-th scored row."""
        parts = [
            PluginScore(p.name, s.item(i), p.weight)
            for p, s in zip(self.plugins, self.per_plugin, strict=True)
        ]
        return ScoreBreakdown(self.total.item(i), tuple(parts))


def check_weights(plugins: Sequence[ScorePlugin]) -> None:
    """Refuse a score phase that cannot rank: none, two of one name, a weight below 1."""
    names = [p.name for p in plugins]
    if not plugins:
        raise ValueError("no score plugin: the engine needs at least one to rank offers")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate score plugin names: {names}")
    for p in plugins:
        valid_weight(p.weight, p.name)


def valid_weight(value: object, plugin: str) -> int:
    """``value`` if it is a score plugin's weight (an integer >= 1), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"score plugin {plugin}: weight must be an integer >= 1, not {value!r}")
    return value


def run_scores(ctx: FilterContext, rows: IntArray, plugins: Sequence[ScorePlugin]) -> Scores:
    """The score phase: every plugin on every row, checked, then the weighted mean."""
    per_plugin = tuple(_checked(p, p.score(ctx, rows), len(rows)) for p in plugins)
    if len(plugins) == 1:  # the mean of one score is that score, exactly
        return Scores(tuple(plugins), per_plugin, per_plugin[0])
    weighted = per_plugin[0] * plugins[0].weight
    for p, s in zip(plugins[1:], per_plugin[1:], strict=True):
        weighted += s * p.weight
    total = weighted / sum(p.weight for p in plugins)
    return Scores(tuple(plugins), per_plugin, total)


def _checked(plugin: ScorePlugin, scores: FloatArray, n: int) -> FloatArray:
    if scores.shape != (n,):
        raise AssertionError(f"score plugin {plugin.name}: {scores.shape} scores for {n} rows")
    if n and not (scores.min() >= 0 and scores.max() <= MAX_SCORE):  # NaN fails both
        raise AssertionError(f"score plugin {plugin.name}: a score outside 0..{MAX_SCORE:g}")
    return scores


def rank_order(ctx: FilterContext, rows: IntArray, total: FloatArray | None = None) -> IntArray:
    """The rank phase: positions into ``rows``, best first.

    Keys, most significant first: the total score (highest first), then the
    tie-break keys that make the order the same every time: the price per
    hour of the placement (cheapest first, exact integer nano-units), the
    provider and region, the instance type, the zone. With price the only
    score plugin this is cheapest first, ties broken by provider, region,
    instance type and zone; without ``total`` it is that order whatever the
    score plugins.
    """
    c = ctx.snapshot.offers.col
    keys = [c("zone_idx")[rows], c("instance_idx")[rows], c("class_idx")[rows]]
    keys.append(ctx.hourly_cmp[rows])
    if total is not None:
        keys.append(-total)
    return np.lexsort(keys)
