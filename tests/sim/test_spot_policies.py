"""Study 1 (deadline jobs on spot): the policies, the optimum and their invariants.

Hand cases use one-hour ticks, spot at 1 and on-demand at 3 per hour, so every cost can be
added up on paper. The optimum is checked against an independent brute force: every
sequence of actions, played by rules written here from the model's description.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archipel.core import InputError
from archipel.sim import POLICIES, SpotJob, SpotPrices, SpotTrace, simulate

HOUR = 3600
PRICES = SpotPrices(spot=Decimal(1), on_demand=Decimal(3))


def run(avail: list[int], job: str, deadline: str, changeover: str) -> dict[str, Decimal]:
    trace = SpotTrace.of("t", HOUR, avail)
    out = simulate(
        SpotJob.from_hours(Decimal(job), Decimal(deadline), Decimal(changeover)),
        [trace],
        PRICES,
    )
    assert all(o.deadline_met for o in out)
    return {o.policy: o.cost for o in out}


@dataclass(frozen=True)
class Case:
    name: str
    avail: list[int]
    job: str
    deadline: str
    changeover: str
    # on-demand, greedy, uniform-progress, optimal
    costs: tuple[str, str, str, str]


CASES = [
    # spot all along: every spot policy runs 4 spot hours
    Case("spot always there", [1] * 6, "4", "6", "1", ("12", "4", "4", "4")),
    # no spot: greedy waits 2 ticks then runs 4 on-demand; UP starts at tick 1; both pay 12
    Case("spot never there", [0] * 6, "4", "6", "1", ("12", "12", "12", "12")),
    # spot for 2 ticks, then a gap: both wait, then one changeover + 2 on-demand ticks
    # (2 + 3 x 3 = 11); going on-demand at tick 2 costs the same
    Case(
        "spot then a long outage", [1, 1, 0, 0, 0, 0, 0, 0], "4", "7", "1", ("12", "11", "11", "11")
    ),
    # spot arrives at tick 2: the optimum rides it to the deadline (3 spot ticks); greedy's
    # net refuses the spot launch (a spot loss would leave no room for a changeover) and UP
    # is behind its line at tick 1, so both pay 3 on-demand ticks
    Case("spot late, tight slack", [0, 0, 1, 1, 1, 1], "3", "5", "1", ("9", "9", "9", "3")),
    # UP goes on-demand at tick 1 (behind its line) and comes back to spot at tick 4 with a
    # changeover: 3 x 3 + 2 x 1 = 11; greedy waits for the spot and pays 4
    Case(
        "waiting pays off", [0, 0, 0, 0, 1, 1, 1, 1, 1, 1], "4", "10", "1", ("12", "4", "11", "4")
    ),
    # half an hour left in the last tick: billed to the half hour (3.5 x 3, 3.5 x 1)
    Case("a partial last tick", [1] * 5, "3.5", "5", "0", ("10.5", "3.5", "3.5", "3.5")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_policy_costs_what_a_hand_count_says(case: Case) -> None:
    costs = run(case.avail, case.job, case.deadline, case.changeover)
    want = dict(
        zip(("on-demand", "greedy", "uniform-progress", "optimal"), case.costs, strict=True)
    )
    for policy, cost in want.items():
        assert costs[policy] == Decimal(cost), policy


def test_the_broker_moves_to_the_zone_that_has_spot() -> None:
    # the home zone never has spot, the second always: archipel runs 4 spot hours there
    job = SpotJob.from_hours(Decimal(4), Decimal(6), Decimal(1))
    home, other = SpotTrace.of("home", HOUR, [0] * 6), SpotTrace.of("other", HOUR, [1] * 6)
    out = {o.policy: o for o in simulate(job, [home, other], PRICES)}
    assert out["archipel"].cost == Decimal(4)
    assert out["archipel"].spot_s == 4 * HOUR
    assert out["optimal"].cost == Decimal(12)  # the single-zone optimum sees the home zone


def test_a_preemption_costs_a_changeover_on_the_next_launch() -> None:
    # spot (tick 0), gone (tick 1), back: the relaunch at tick 2 is a changeover tick, then
    # ticks 3 and 4 finish the work: 4 spot ticks billed, done at 5 h
    out = simulate(
        SpotJob.from_hours(Decimal(3), Decimal(8), Decimal(1)),
        [SpotTrace.of("t", HOUR, [1, 0, 1, 1, 1, 1, 1, 1])],
        PRICES,
        ["greedy"],
    )[0]
    assert (out.cost, out.preemptions, out.changeovers) == (Decimal(4), 1, 1)
    assert out.finish_s == 5 * HOUR


@pytest.mark.parametrize(
    ("job", "deadline", "changeover", "message"),
    [
        ("5", "4", "0", "no policy can meet it"),
        ("0", "4", "0", "--job-hours is 0"),
        ("1", "2", "-1", "--changeover-hours is -1"),
        ("0.00001", "2", "0", "not a whole number of seconds"),
    ],
    ids=["deadline before the work", "no work", "negative changeover", "finer than a second"],
)
def test_a_job_that_makes_no_sense_is_refused(
    job: str, deadline: str, changeover: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        SpotJob.from_hours(Decimal(job), Decimal(deadline), Decimal(changeover))


def test_a_trace_too_short_for_the_deadline_is_refused() -> None:
    with pytest.raises(InputError, match=r"the trace covers 3\.000000 h"):
        simulate(
            SpotJob.from_hours(Decimal(2), Decimal(5), Decimal(0)),
            [SpotTrace.of("short", HOUR, [1, 1, 1])],
            PRICES,
        )


# --------------------------------------------------------------------------- brute force


def brute_force(
    avail: list[bool], gap: int, work: int, deadline: int, over: int, price: dict[str, int]
) -> int | None:
    """The least cost over every action sequence, by the model's rules written afresh.

    Each tick: wait, spot (if the trace has it) or on-demand. Keeping the instance held
    keeps its changeover countdown; any other launch but the first starts a countdown of
    ``over`` ticks without progress. A running tick is billed in full, but the one that
    finishes the work, billed up to the finish; the finish must not pass the deadline.
    """
    ticks = -(-work // gap)
    last = work - (ticks - 1) * gap
    horizon = min(len(avail), (deadline - last) // gap + 1)
    best: int | None = None
    for plan in itertools.product(("wait", "spot", "od"), repeat=horizon):
        held, countdown, launched, done, cost = "none", 0, False, 0, 0
        for t, act in enumerate(plan):
            if act == "wait":
                held = "none"
                continue
            if act == "spot" and not avail[t]:
                break
            if act != held:
                countdown = over if launched else 0
                launched, held = True, act
            if countdown:
                countdown -= 1
                cost += gap * price[act]
                continue
            done += 1
            if done == ticks:
                cost += last * price[act]
                if t * gap + last <= deadline and (best is None or cost < best):
                    best = cost
                break
            cost += gap * price[act]
    return best


@st.composite
def tiny_jobs(draw: st.DrawFn) -> tuple[list[int], int, int, int, int]:
    gap = draw(st.sampled_from([HOUR, 1800]))
    n = draw(st.integers(8, 12))
    avail = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    work = draw(st.integers(1, 5 * 2)) * gap // 2  # whole or half ticks
    deadline = work + draw(st.integers(0, 4)) * gap // 2
    over = draw(st.integers(0, 2)) * gap
    return avail, gap, work, deadline, over


def _job(work: int, deadline: int, over: int) -> SpotJob:
    return SpotJob(work, deadline, over)


@settings(max_examples=40, deadline=None)
@given(tiny_jobs())
def test_the_optimum_is_the_brute_force_least_cost(
    job: tuple[list[int], int, int, int, int],
) -> None:
    avail, gap, work, deadline, over = job
    horizon = (deadline - (work - (-(-work // gap) - 1) * gap)) // gap + 1
    if horizon > 8 or horizon > len(avail):  # keep 3^T enumerable
        return
    nano = {"spot": PRICES.spot_nano, "od": PRICES.on_demand_nano}
    want = brute_force([a > 0 for a in avail], gap, work, deadline, -(-over // gap), nano)
    got = simulate(_job(work, deadline, over), [SpotTrace.of("t", gap, avail)], PRICES, ["optimal"])
    assert want is not None  # work <= deadline: on-demand from the start finishes
    assert got[0].cost_units == want


@settings(max_examples=60, deadline=None)
@given(tiny_jobs())
def test_every_policy_meets_the_deadline_and_costs_at_least_the_optimum(
    job: tuple[list[int], int, int, int, int],
) -> None:
    avail, gap, work, deadline, over = job
    if (deadline - work) // gap + 2 > len(avail):
        return
    trace = SpotTrace.of("t", gap, avail)
    out = {o.policy: o for o in simulate(_job(work, deadline, over), [trace], PRICES)}
    assert set(out) == set(POLICIES)
    for o in out.values():
        assert o.deadline_met, o.policy
        assert o.finish_s <= deadline
        assert o.cost_units >= out["optimal"].cost_units or o.policy == "archipel"
    assert out["on-demand"].cost == Decimal(work) / HOUR * PRICES.on_demand


@settings(max_examples=60, deadline=None)
@given(
    hours=st.decimals(min_value=Decimal("0.25"), max_value=Decimal(30), places=2),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(50), places=4),
)
def test_on_demand_costs_the_hours_times_the_price_exactly(hours: Decimal, price: Decimal) -> None:
    if hours * HOUR != int(hours * HOUR):
        return
    job = SpotJob.from_hours(hours, hours + 1, Decimal("0.2"))
    out = simulate(
        job, [SpotTrace.of("t", 195, [1] * 700)], SpotPrices(Decimal("0.5"), price), ["on-demand"]
    )
    assert out[0].cost == hours * price
    assert out[0].on_demand_s == job.work_s


def test_the_same_inputs_give_the_same_outcomes() -> None:
    avail = [1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    job = SpotJob.from_hours(Decimal(5), Decimal(9), Decimal("0.5"))
    a = simulate(
        job, [SpotTrace.of("t", HOUR, avail), SpotTrace.of("u", HOUR, avail[::-1])], PRICES
    )
    b = simulate(
        job, [SpotTrace.of("t", HOUR, avail), SpotTrace.of("u", HOUR, avail[::-1])], PRICES
    )
    assert [o.as_dict() for o in a] == [o.as_dict() for o in b]


@settings(max_examples=40, deadline=None)
@given(tiny_jobs(), st.lists(st.lists(st.integers(0, 1), min_size=12, max_size=12), max_size=3))
def test_the_broker_meets_every_deadline_and_is_uniform_progress_on_copies_of_one_zone(
    job: tuple[list[int], int, int, int, int], others: list[list[int]]
) -> None:
    avail, gap, work, deadline, over = job
    if (deadline - work) // gap + 2 > len(avail):
        return
    home = SpotTrace.of("home", gap, avail)
    spec = _job(work, deadline, over)
    zones = [home, *(SpotTrace.of(f"z{i}", gap, a[: len(avail)]) for i, a in enumerate(others))]
    broker = simulate(spec, zones, PRICES, ["archipel"])[0]
    assert broker.deadline_met
    copies = simulate(spec, [home, home, home], PRICES, ["uniform-progress", "archipel"])
    assert copies[0].cost_units == copies[1].cost_units
