"""Study 1: a deadline job on spot instances (the *Can't Be Late* setup, NSDI'24).

A job needs ``H`` hours of compute and must finish within ``D`` hours of its start. Each
tick of the availability trace it runs on a spot instance (when the trace has one), on an
on-demand instance (always obtainable), or waits. Every launch but the job's first pays a
changeover of ``C`` hours, billed and without progress: a switch spot <-> on-demand, a
relaunch after a preemption or a wait, a move to another zone.

The model is ticked (no event queue): the trace is the only source of events and has one
reading per tick, so a job is a loop over ticks and the offline optimum a dynamic program
over the same ticks. Times are whole seconds; a tick is the trace's ``gap_seconds``:

- the job starts at the tick holding ``S`` (``S`` rounded down to a tick);
- a tick on an instance is billed in full, except the tick that finishes the job, which is
  billed up to the finish (``H`` need not be a whole number of ticks);
- the changeover is ``ceil(C / tick)`` whole ticks (rounded up: never optimistic);
- spot runs during a tick if the trace has spot at that tick; a spot instance that was
  running and whose zone has none at the next tick is preempted.

Money is exact: a cost is kept as an integer number of nano-units x seconds per hour
(``price_nano * seconds``), shown divided by 3600 x 10^9 and rounded half-even to the
nano-unit. Every policy keeps an on-demand finish possible after each tick (the greedy
rule's safety net), so all of them meet the deadline whenever ``H <= D``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Final

import numpy as np

from archipel.core import NANO, InputError
from archipel.sim._trace import SpotTrace

IDLE: Final = 0
SPOT: Final = 1
ON_DEMAND: Final = 2

POLICIES: Final = ("on-demand", "greedy", "uniform-progress", "optimal", "archipel")
_HOUR = 3600
_UNITS_PER_MONEY = _HOUR * NANO  # cost units per currency unit
_INF: Final = 1 << 62


def _seconds(hours: Decimal, what: str, *, positive: bool) -> int:
    if not hours.is_finite() or hours < 0 or (positive and hours == 0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"{what} is {hours}; it must be a number of hours {bound}")
    seconds = hours * _HOUR
    if seconds != seconds.to_integral_value():
        raise InputError(f"{what} is {hours} h, not a whole number of seconds; round it")
    return int(seconds)


@dataclass(frozen=True, slots=True)
class SpotJob:
    """The job: compute, deadline, changeover and start, in whole seconds."""

    work_s: int
    deadline_s: int
    changeover_s: int
    start_s: int = 0

    @classmethod
    def from_hours(
        cls, job: Decimal, deadline: Decimal, changeover: Decimal, start: Decimal = Decimal(0)
    ) -> SpotJob:
        """Check the hours as typed; a job that no policy can finish in time is refused."""
        work_s = _seconds(job, "--job-hours", positive=True)
        deadline_s = _seconds(deadline, "--deadline-hours", positive=True)
        changeover_s = _seconds(changeover, "--changeover-hours", positive=False)
        start_s = _seconds(start, "--start-hours", positive=False)
        if work_s > deadline_s:
            raise InputError(
                f"the job needs {job} h of compute but the deadline is {deadline} h after its "
                "start: no policy can meet it; give --deadline-hours >= --job-hours"
            )
        return cls(work_s, deadline_s, changeover_s, start_s)


@dataclass(frozen=True, slots=True)
class SpotPrices:
    """Hourly prices of the instance, spot and on-demand, in one currency."""

    spot: Decimal
    on_demand: Decimal
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name, value in (("spot", self.spot), ("on-demand", self.on_demand)):
            if not value.is_finite() or value < 0:
                raise InputError(f"the {name} price is {value}; it must be >= 0")
            if value * NANO != (value * NANO).to_integral_value():
                raise InputError(f"the {name} price {value} is finer than a nano-unit")

    @property
    def spot_nano(self) -> int:
        return int(self.spot * NANO)

    @property
    def on_demand_nano(self) -> int:
        return int(self.on_demand * NANO)


def money(units: int) -> Decimal:
    """Cost units (nano x seconds / hour) as money, rounded half-even to the nano-unit."""
    return (Decimal(units) / _UNITS_PER_MONEY).quantize(Decimal(1).scaleb(-9), ROUND_HALF_EVEN)


def hours(seconds: int) -> Decimal:
    """Seconds as hours, to the micro-hour (exact for whole minutes and most ticks)."""
    return (Decimal(seconds) / _HOUR).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy did: money, instance hours, finish time, deadline."""

    policy: str
    cost_units: int  # exact: nano-units x seconds / hour
    on_demand_s: int  # billed seconds on on-demand
    spot_s: int  # billed seconds on spot
    finish_s: int  # from the job's start
    deadline_met: bool
    changeovers: int
    preemptions: int
    currency: str

    @property
    def cost(self) -> Decimal:
        return money(self.cost_units)

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "cost": str(self.cost),
            "currency": self.currency,
            "on_demand_hours": str(hours(self.on_demand_s)),
            "spot_hours": str(hours(self.spot_s)),
            "finish_hours": str(hours(self.finish_s)),
            "deadline_met": self.deadline_met,
            "changeovers": self.changeovers,
            "preemptions": self.preemptions,
        }


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class State:
    """Where the job is at the start of a tick."""

    done: int = 0  # progress ticks done (the last one may be partial)
    mode: int = IDLE  # IDLE, SPOT or ON_DEMAND: the instance it holds
    overhead: int = 0  # changeover ticks still to go on that instance
    started: bool = False  # launched once: a later launch pays the changeover
    zone: int = 0  # zone of the spot instance held


class Model:
    """A job on one or more zones' traces, ticked; the rules every policy and the DP share."""

    def __init__(self, job: SpotJob, traces: Sequence[SpotTrace], prices: SpotPrices) -> None:
        if not traces:
            raise InputError("give at least one --trace")
        gap = traces[0].gap_seconds
        for tr in traces[1:]:
            if tr.gap_seconds != gap:
                raise InputError(
                    f"{tr.name}: ticks of {tr.gap_seconds} s, but {traces[0].name} has "
                    f"{gap} s; the traces of one run must share their tick"
                )
        self.job, self.prices, self.gap = job, prices, gap
        self.names = tuple(tr.name for tr in traces)
        self.ticks_needed = -(-job.work_s // gap)  # K
        self.last_s = job.work_s - (self.ticks_needed - 1) * gap  # billed in the final tick
        self.changeover = -(-job.changeover_s // gap)
        self.horizon = (job.deadline_s - self.last_s) // gap + 1  # ticks that can be used
        first = job.start_s // gap
        for tr in traces:
            if first + self.horizon > len(tr):
                raise InputError(
                    f"{tr.name}: the trace covers {hours(tr.seconds)} h; a start at "
                    f"{hours(job.start_s)} h with a {hours(job.deadline_s)} h deadline needs "
                    f"{hours((first + self.horizon) * gap)} h; start earlier or shorten it"
                )
        self.avail = np.stack([tr.available[first : first + self.horizon] for tr in traces])
        self.avail.flags.writeable = False
        self.price = {SPOT: prices.spot_nano, ON_DEMAND: prices.on_demand_nano}
        # streak[z, t]: ticks in a row that zone z has had spot, up to and including t
        streak = np.zeros(self.avail.shape, dtype=np.int64)
        for z in range(self.avail.shape[0]):
            run = 0
            for t, up in enumerate(self.avail[z].tolist()):
                run = run + 1 if up else 0
                streak[z, t] = run
        self.streak = streak

    def continues(self, tick: int, s: State, action: int, zone: int) -> bool:
        """``action`` keeps the instance the job holds (no launch, no changeover)."""
        if s.mode != action:
            return False
        return action == ON_DEMAND or s.zone == zone

    def remaining_s(self, done: int) -> int:
        return self.job.work_s - done * self.gap

    def on_demand_finish_s(self, tick: int, s: State) -> int:
        """When the job would finish if it ran on-demand from ``tick`` on, from ``s``."""
        if s.done >= self.ticks_needed:
            return (tick - 1) * self.gap + self.last_s
        over = s.overhead if s.mode == ON_DEMAND else (self.changeover if s.started else 0)
        return (tick + over) * self.gap + self.remaining_s(s.done)

    def safe(self, tick: int, s: State) -> bool:
        """On-demand from ``tick`` on still meets the deadline."""
        return self.on_demand_finish_s(tick, s) <= self.job.deadline_s

    def step(self, tick: int, s: State, action: int, zone: int = 0) -> tuple[State, int, int]:
        """Apply ``action`` during ``tick``: the next state, billed seconds, cost units."""
        if action == IDLE:
            return State(s.done, IDLE, 0, s.started, 0), 0, 0
        if action == SPOT and not self.avail[zone, tick]:
            raise ValueError(f"no spot in zone {zone} at tick {tick}")
        if self.continues(tick, s, action, zone):
            over = s.overhead
        else:
            over = self.changeover if s.started else 0
        if over > 0:
            billed = self.gap
            nxt = State(s.done, action, over - 1, True, zone)
        else:
            done = s.done + 1
            billed = self.last_s if done == self.ticks_needed else self.gap
            nxt = State(done, action, 0, True, zone)
        return nxt, billed, billed * self.price[action]


Decide = Callable[[Model, int, State], tuple[int, int]]


def run_policy(model: Model, name: str, decide: Decide, *, net: bool = True) -> Outcome:
    """The tick loop: ask the policy, keep the safety net (unless ``net`` is false), bill.

    The net: when the state after the chosen action could no longer finish in time on
    on-demand from the next tick on, the job takes on-demand now instead. From a state
    that can, on-demand keeps it so, which is why every policy meets a feasible deadline.
    """
    s = State()
    cost = od_s = spot_s = changeovers = preemptions = 0
    finish = -1
    for tick in range(model.horizon):
        if s.mode == SPOT and not model.avail[s.zone, tick]:
            preemptions += 1
        action, zone = decide(model, tick, s)
        nxt, billed, units = model.step(tick, s, action, zone)
        if net and nxt.done < model.ticks_needed and not model.safe(tick + 1, nxt):
            action, zone = ON_DEMAND, 0  # the slack cannot absorb this tick: on-demand now
            nxt, billed, units = model.step(tick, s, action, zone)
        if action != IDLE and s.started and not model.continues(tick, s, action, zone):
            changeovers += 1
        cost += units
        if action == SPOT:
            spot_s += billed
        elif action == ON_DEMAND:
            od_s += billed
        s = nxt
        if s.done == model.ticks_needed:
            finish = tick * model.gap + model.last_s
            break
    met = 0 <= finish <= model.job.deadline_s
    return Outcome(
        name,
        cost,
        od_s,
        spot_s,
        finish,
        met,
        changeovers,
        preemptions,
        model.prices.currency,
    )


# --------------------------------------------------------------------------- policies


def on_demand(model: Model, tick: int, s: State) -> tuple[int, int]:
    """Only on-demand, from the first tick."""
    return ON_DEMAND, 0


def greedy(model: Model, tick: int, s: State) -> tuple[int, int]:
    """Spot whenever the trace has it, otherwise wait; the safety net moves it to on-demand.

    Once on on-demand it stays there: its slack no longer grows, so going back to spot
    would cost a changeover the deadline cannot absorb.
    """
    if s.mode == ON_DEMAND:
        return ON_DEMAND, 0
    if model.avail[0, tick]:
        return SPOT, 0
    return IDLE, 0


def _lead_s(model: Model, tick: int, s: State) -> Fraction:
    """Progress ahead of the uniform line ``H * t / D`` (negative: behind), in seconds."""
    done = min(s.done * model.gap, model.job.work_s)
    return Fraction(done) - Fraction(model.job.work_s * tick * model.gap, model.job.deadline_s)


def _uniform(model: Model, tick: int, s: State, spot: int | None) -> tuple[int, int]:
    """Uniform Progress given the zone to use for spot (``None``: no spot anywhere)."""
    job = model.job
    lead = _lead_s(model, tick, s)
    if s.mode == ON_DEMAND:
        # hysteresis: back to spot only when the job is ahead of the line by the progress
        # of two changeovers (the line shifted by 2C); without spot, keep the instance
        margin = Fraction(2 * model.changeover * model.gap * job.work_s, job.deadline_s)
        if spot is not None and lead > margin:
            return SPOT, spot
        return ON_DEMAND, 0
    if spot is not None:
        return SPOT, spot
    if lead < 0:
        return ON_DEMAND, 0
    return IDLE, 0


def uniform_progress(model: Model, tick: int, s: State) -> tuple[int, int]:
    """The paper's Uniform Progress on one zone.

    Keep the job at or above the line from (start, 0) to (deadline, H): spot when the
    trace has it; without spot, on-demand when the job is behind the line, else wait. An
    on-demand instance is kept while there is no spot, and left for spot only when the
    job is ahead of the line by the progress of two changeovers (the paper's hysteresis,
    so that it does not flap around the line).
    """
    return _uniform(model, tick, s, 0 if model.avail[0, tick] else None)


def archipel(model: Model, tick: int, s: State) -> tuple[int, int]:
    """Uniform Progress over several zones: stay in the current zone while it has spot,
    else move to the zone whose spot has been up the longest (then the first named),
    paying the changeover."""
    column = model.avail[:, tick]
    if s.mode == SPOT and column[s.zone]:
        return _uniform(model, tick, s, s.zone)
    if not column.any():
        return _uniform(model, tick, s, None)
    best = int(np.argmax(model.streak[:, tick]))  # the first of the longest streaks
    return _uniform(model, tick, s, best)


# --------------------------------------------------------------------------- the optimum


def _state_index(model: Model, s: State) -> int:
    if s.mode == IDLE:
        return 1 if s.started else 0
    base = 2 if s.mode == SPOT else 3 + model.changeover
    return base + s.overhead


def optimal_table(model: Model) -> tuple[int, np.ndarray]:
    """The least cost over the first zone's trace, and the best action per tick and state.

    Backward dynamic programming over (tick t, progress k, state s): s is idle before the
    first launch, idle after it, or on spot / on-demand with ``o`` changeover ticks to go
    (``4 + 2C`` states, ``C`` the changeover in ticks). V_t[s, k] is the least cost to
    finish from tick t; V_T = infinite but for k = K (done), 0. Each tick takes the
    minimum over {wait, spot (if the trace has it), on-demand}, vectorised over k, and
    only over the k that can be reached (k <= t) and can still finish (k >= K - (T - t)):
    a band of width T - K for tight deadlines. Time O(T K (C + 1)) at most, memory
    O(T K (C + 1)) bytes for the decisions. Ties go to waiting, then
    spot, then on-demand, so the plan is deterministic.
    """
    k_max, c, horizon = model.ticks_needed, model.changeover, model.horizon
    n_states = 4 + 2 * c
    gap = model.gap
    price = model.price
    value = np.full((n_states, k_max + 1), _INF, dtype=np.int64)
    value[:, k_max] = 0
    decisions = np.zeros((horizon, n_states, k_max), dtype=np.int8)
    progress_cost = {}
    for kind in (SPOT, ON_DEMAND):
        row = np.full(k_max, gap * price[kind], dtype=np.int64)
        row[k_max - 1] = model.last_s * price[kind]
        progress_cost[kind] = row
    spot_base, od_base = 2, 3 + c
    # per state: the idle state it falls to, its overhead on a spot / on-demand run
    idle_of = np.array([0] + [1] * (n_states - 1))
    spot_o = np.array([0, c, *range(c + 1), *([c] * (c + 1))])
    od_o = np.array([0, c, *([c] * (c + 1)), *range(c + 1)])
    avail = model.avail[0]
    full = {kind: gap * price[kind] for kind in (SPOT, ON_DEMAND)}
    for t in range(horizon - 1, -1, -1):
        nxt = value
        value = np.full_like(nxt, _INF)
        value[:, k_max] = 0
        # only progress k with k <= t (reachable) and k + (T - t) >= K (can still finish)
        lo, hi = max(0, k_max - (horizon - t)), min(t, k_max - 1) + 1
        if lo >= hi:
            continue
        cand = np.empty((3, n_states, hi - lo), dtype=np.int64)
        cand[IDLE] = nxt[idle_of, lo:hi]
        for kind, base, o_of in ((SPOT, spot_base, spot_o), (ON_DEMAND, od_base, od_o)):
            if kind == SPOT and not avail[t]:
                cand[SPOT] = np.iinfo(np.int64).max  # above any finite or infeasible value
                continue
            runs = np.empty((c + 1, hi - lo), dtype=np.int64)  # by overhead still to go
            runs[0] = progress_cost[kind][lo:hi] + nxt[base, lo + 1 : hi + 1]
            runs[1:] = full[kind] + nxt[base : base + c, lo:hi]
            cand[kind] = runs[o_of]
        best = np.minimum(np.minimum(cand[IDLE], cand[SPOT]), cand[ON_DEMAND])
        value[:, lo:hi] = best
        # the first of equal costs: wait, then spot, then on-demand
        decisions[t, :, lo:hi] = np.where(
            cand[IDLE] == best, IDLE, np.where(cand[SPOT] == best, SPOT, ON_DEMAND)
        )
    return int(value[0, 0]), decisions


def optimal(model: Model) -> Outcome:
    """The omniscient optimum, replayed through the same tick rules as every policy."""
    least, decisions = optimal_table(model)
    if least >= _INF // 2:
        raise InputError("no schedule meets the deadline on this trace")  # H <= D forbids it

    def plan(m: Model, tick: int, s: State) -> tuple[int, int]:
        return int(decisions[tick, _state_index(m, s), s.done]), 0

    out = run_policy(model, "optimal", plan, net=False)
    if out.cost_units != least:
        raise AssertionError(f"the optimum replays at {out.cost_units}, not {least}")
    return out


SINGLE_ZONE: Final[dict[str, Decide]] = {
    "on-demand": on_demand,
    "greedy": greedy,
    "uniform-progress": uniform_progress,
}


def simulate(
    job: SpotJob,
    traces: Sequence[SpotTrace],
    prices: SpotPrices,
    policies: Sequence[str] = POLICIES,
) -> list[Outcome]:
    """Each policy's outcome; the single-zone ones use the first trace, ``archipel`` all."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise InputError(f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    home = Model(job, traces[:1], prices)
    out = []
    for name in policies:
        if name == "optimal":
            out.append(optimal(home))
        elif name == "archipel":
            out.append(run_policy(Model(job, traces, prices), name, archipel))
        else:
            out.append(run_policy(home, name, SINGLE_ZONE[name]))
    return out
