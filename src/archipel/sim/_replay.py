"""The fidelity replay: the ``openb`` pods on their own cluster, with a model of its scheduler.

Does the simulator's queueing come out as the real cluster's did? Every pod of the trace
is replayed on the trace's own node list, and the simulated queueing delay (bound minus
created) is compared with the observed one (``scheduled_time - creation_time``).

**The scheduler model** (docs/simulate-replay.md has the reasons):

- A pod is *tried* at its creation and then once every ``period`` seconds until it is
  bound or deleted, the attempt times jittered by a latency drawn from the trace. Pods
  tried at the same instant go in creation order; a pod that cannot go does not hold up
  the others (as in Kubernetes, it waits for its next try).
- An attempt is *blocked*, with the probability the calibration found for that attempt's
  number, for a cause the trace does not hold (the cluster's other pods, quotas, the
  node's own state): the trace is a sample of the cluster's pods, so what kept the
  sampled ones waiting is mostly not in it.
- An attempt that is not blocked runs the filter and the score of
  :class:`~archipel.sim._cluster.Cluster` (CPU, memory, GPUs, shares of a GPU; best
  fit) and binds the pod at once, or finds no node (``no-fit``) and waits.
- Every pod is deleted at its trace deletion time, bound or not; one not bound by then
  is never scheduled. A bound pod holds its resources until then.

**Calibration** (:func:`fit_delays`) reads only the pods it is given: the retry period
(the period that best lines up the delays beyond the first try), the latency of a first
try and of a later one (the delays' offsets from the grid of periods), and the chance
that try ``k`` binds a pod that reached it, counting a never-scheduled pod as having
reached every try before its deletion and bound at none (Kaplan-Meier over tries). Tries
reached by fewer than :data:`MIN_AT_RISK` pods share one pooled chance.
:func:`study` fits on the pods created before the median creation time and judges on
the others: nothing it judges was used to calibrate.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from archipel.core import InputError
from archipel.sim._cluster import Cluster, Placement
from archipel.sim._distance import ks_statistic, quantiles, wasserstein1
from archipel.sim._kernel import Event, Kernel
from archipel.sim._openb import Node, Pod

#: tries reached by fewer pods than this share one pooled chance of binding
MIN_AT_RISK = 30
#: the retry periods searched, in seconds: from, to, step
PERIODS = (15.0, 120.0, 0.1)
#: quantiles shown beside the distances
SHOWN = (0.5, 0.75, 0.9, 0.95, 0.99)
_DELETED, _TRIED = 0, 1  # at one instant, deletions free room before tries use it


class Miss(StrEnum):
    """Why a try did not bind its pod."""

    blocked = "blocked"  # a cause the trace does not hold (see the module's text)
    no_fit = "no-fit"  # no node had room for it


@dataclass(frozen=True, slots=True)
class DelayModel:
    """What the calibration found (see the module's text); times in seconds."""

    period: float
    first: tuple[float, ...]  # latencies of binds at the first try, sorted
    retry: tuple[float, ...]  # offsets of binds at later tries from the try's grid time
    hazards: tuple[float, ...]  # chance that try k binds a pod that reached it
    tail: float  # the same, pooled, for the tries after ``hazards``
    fitted_on: int  # pods

    @classmethod
    def immediate(cls) -> DelayModel:
        """No latency and nothing blocked: capacity alone decides (the baseline)."""
        return cls(1.0, (0.0,), (0.0,), (), 1.0, 0)

    def hazard(self, attempt: int) -> float:
        return self.hazards[attempt] if attempt < len(self.hazards) else self.tail

    def as_dict(self) -> dict[str, Any]:
        return {
            "fitted_on_pods": self.fitted_on,
            "period_s": round(self.period, 3),
            "first_try_latency_s": _shown(self.first),
            "retry_offset_s": _shown(self.retry),
            "bind_chance_by_try": [round(h, 4) for h in self.hazards],
            "bind_chance_after": round(self.tail, 4),
        }


def find_period(delays: Sequence[float]) -> float:
    """The retry period that best lines up the delays beyond the first try.

    Each delay of at least the shortest period searched is a phase on a circle of that
    period; the period whose phases bunch the most (the largest mean resultant length,
    Rayleigh's statistic) wins. A divisor of the true period lines them up less well (the
    spread of latencies turns into more phase), a multiple splits them in two; of equals,
    the longest.
    """
    low, high, step = PERIODS
    late = np.asarray([d for d in delays if d >= low], dtype=float)
    if not len(late):
        return high  # no pod waited for a retry: the period is never used
    candidates = np.arange(low, high + step / 2, step)
    bunched = np.abs(np.exp(2j * np.pi * late[None, :] / candidates[:, None]).mean(axis=1))
    # of periods that line the delays up equally well (a divisor of exact multiples), the
    # longest: the coarsest grid that explains them
    return float(candidates[np.flatnonzero(bunched >= bunched.max() - 1e-9)[-1]])


def fit_delays(pods: Sequence[Pod], min_at_risk: int = MIN_AT_RISK) -> DelayModel:
    """Calibrate the model on ``pods`` alone (see the module's text)."""
    delays = np.asarray([p.scheduled - p.created for p in pods if p.scheduled is not None])
    if not len(delays):
        raise InputError("no pod of the calibration window was scheduled: nothing to fit")
    period = find_period(delays.tolist())
    tries = np.floor(delays / period + 0.5).astype(np.int64)
    offsets = delays - tries * period
    lives = [p.deleted - p.created for p in pods if p.scheduled is None]
    failed = np.floor(np.asarray(lives, dtype=float) / period).astype(np.int64) + 1
    top = int(max(tries.max(), failed.max(initial=0))) + 1
    binds = np.bincount(tries, minlength=top)
    # pods that reached try k: bound at k or later, or still waiting (more than k tries)
    reached = _at_least(binds) + _at_least(np.bincount(failed, minlength=top + 1))[1:]
    few = reached < min_at_risk
    enough = int(np.argmax(few)) if few.any() else top
    rest = int(reached[enough:].sum())
    hazards = tuple(float(b / r) for b, r in zip(binds[:enough], reached[:enough], strict=True))
    tail = float(binds[enough:].sum() / rest) if rest else (hazards[-1] if hazards else 1.0)
    return DelayModel(
        period,
        tuple(sorted(offsets[tries == 0].tolist())) or (0.0,),
        tuple(sorted(offsets[tries > 0].tolist())) or (0.0,),
        hazards,
        tail,
        len(pods),
    )


def _at_least(counts: np.ndarray) -> np.ndarray:
    """``[k]``: how many of ``counts`` are at index ``k`` or later."""
    return np.asarray(counts[::-1].cumsum()[::-1])


@dataclass(frozen=True, slots=True)
class Replay:
    """What the replay did with every pod (in the order given)."""

    pods: tuple[Pod, ...]
    bound: tuple[float | None, ...]  # when each pod was bound; None: never
    placements: tuple[Placement | None, ...]
    tries: int
    misses: dict[str, int]
    events: int
    peak_used: tuple[float, float, float]  # the largest shares of GPUs, CPU and memory in use


@dataclass
class _Run:
    """One replay's state on the kernel (see :func:`replay`)."""

    pods: Sequence[Pod]
    cluster: Cluster
    model: DelayModel
    rng: np.random.Generator
    kernel: Kernel = field(default_factory=lambda: Kernel(datetime(1970, 1, 1)))
    tries: int = 0
    misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Miss, 0))
    peak: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def __post_init__(self) -> None:
        self.bound: list[float | None] = [None] * len(self.pods)
        self.placements: list[Placement | None] = [None] * len(self.pods)
        self.next_try: list[Event | None] = [None] * len(self.pods)
        self._offsets = (np.asarray(self.model.first), np.asarray(self.model.retry))

    def start(self) -> None:
        for i, pod in enumerate(self.pods):
            self.kernel.at(pod.deleted, functools.partial(self._delete, i), _DELETED)
            self._schedule(i, 0)

    def _schedule(self, i: int, attempt: int) -> None:
        offsets = self._offsets[attempt > 0]
        offset = float(offsets[self.rng.integers(len(offsets))])
        when = self.pods[i].created + attempt * self.model.period + offset
        action = functools.partial(self._try, i, attempt)
        self.next_try[i] = self.kernel.at(max(when, self.kernel.now), action, _TRIED)

    def _try(self, i: int, attempt: int) -> None:
        self.next_try[i] = None
        self.tries += 1
        if self.rng.random() >= self.model.hazard(attempt):
            self.misses[Miss.blocked] += 1
            return self._schedule(i, attempt + 1)
        placement = self.cluster.place(self.pods[i])
        if placement is None:
            self.misses[Miss.no_fit] += 1
            return self._schedule(i, attempt + 1)
        self.bound[i], self.placements[i] = self.kernel.now, placement
        self.peak = [max(a, b) for a, b in zip(self.peak, self.cluster.used(), strict=True)]

    def _delete(self, i: int) -> None:
        pending = self.next_try[i]
        if pending is not None:  # deleted while waiting: never scheduled
            pending.cancel()
        placement = self.placements[i]
        if placement is not None:
            self.cluster.release(placement)


def replay(
    pods: Sequence[Pod], nodes: Sequence[Node], model: DelayModel, rng: np.random.Generator
) -> Replay:
    """Replay ``pods`` on ``nodes`` under ``model``; the same ``rng`` state gives the same run."""
    run = _Run(pods, Cluster(nodes), model, rng)
    run.start()
    run.kernel.run()
    return Replay(
        tuple(pods),
        tuple(run.bound),
        tuple(run.placements),
        run.tries,
        {str(k): v for k, v in run.misses.items()},
        run.kernel.events,
        (run.peak[0], run.peak[1], run.peak[2]),
    )


@dataclass(frozen=True, slots=True)
class Fidelity:
    """Observed against simulated, over the pods created in one window."""

    pods: int
    observed: tuple[float, ...]  # queueing delays of the pods the trace scheduled, sorted
    simulated: tuple[float, ...]  # the same, of the pods the replay bound
    w1: float | None  # seconds; None when either side scheduled nothing
    ks: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pods": self.pods,
            "scheduled": {"observed": len(self.observed), "simulated": len(self.simulated)},
            "never_scheduled": {
                "observed": self.pods - len(self.observed),
                "simulated": self.pods - len(self.simulated),
            },
            "delay_s": {"observed": _shown(self.observed), "simulated": _shown(self.simulated)},
            "wasserstein1_s": None if self.w1 is None else round(self.w1, 3),
            "ks": None if self.ks is None else round(self.ks, 4),
        }


def judge(run: Replay, low: float, high: float) -> Fidelity:
    """Compare the delays of the pods created in ``[low, high)``."""
    chosen = [i for i, p in enumerate(run.pods) if low <= p.created < high]
    observed = sorted(
        p.scheduled - p.created for i in chosen if (p := run.pods[i]).scheduled is not None
    )
    simulated = sorted(b - run.pods[i].created for i in chosen if (b := run.bound[i]) is not None)
    both = bool(observed) and bool(simulated)
    return Fidelity(
        len(chosen),
        tuple(observed),
        tuple(simulated),
        wasserstein1(observed, simulated) if both else None,
        ks_statistic(observed, simulated) if both else None,
    )


@dataclass(frozen=True, slots=True)
class Study:
    """The fidelity study: fitted on one half by time, judged on the other."""

    seed: int
    split: float  # seconds: pods created before it calibrate, the others are judged
    model: DelayModel
    run: Replay
    calibration: Fidelity  # in sample: the half the model was fitted on
    judged: Fidelity  # out of sample
    baseline: Fidelity  # the judged half under capacity alone (no latency, nothing blocked)
    drift: tuple[float, float] | None  # W1 (s) and KS between the halves' observed delays

    def drift_dict(self) -> dict[str, float | None]:
        w1, ks = self.drift or (None, None)
        return {
            "wasserstein1_s": None if w1 is None else round(w1, 3),
            "ks": None if ks is None else round(ks, 4),
        }


def study(pods: Sequence[Pod], nodes: Sequence[Node], seed: int) -> Study:
    """Split ``pods`` at their median creation time, fit on the first half, replay all of
    them, and judge the second half (see the module's text)."""
    if len(pods) < 2:
        raise InputError("the fidelity study needs at least two pods to split in time")
    split = float(np.median([p.created for p in pods]))
    model = fit_delays([p for p in pods if p.created < split])
    run = replay(pods, nodes, model, np.random.default_rng(seed))
    plain = replay(pods, nodes, DelayModel.immediate(), np.random.default_rng(seed))
    calibration, judged = judge(run, -np.inf, split), judge(run, split, np.inf)
    a, b = calibration.observed, judged.observed
    drift = (wasserstein1(a, b), ks_statistic(a, b)) if a and b else None
    return Study(seed, split, model, run, calibration, judged, judge(plain, split, np.inf), drift)


def _shown(sample: Sequence[float]) -> dict[str, float | None]:
    if not sample:
        return {f"p{round(q * 100)}": None for q in SHOWN}
    shown = zip(SHOWN, quantiles(sample, SHOWN), strict=True)
    return {f"p{round(q * 100)}": round(v, 3) for q, v in shown}
