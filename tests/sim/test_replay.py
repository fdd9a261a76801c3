"""The fidelity replay: its scheduler on tiny hand-made traces (placements and delays worked
out by hand), its calibration, and the invariants of any run."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archipel.core import InputError
from archipel.sim._openb import Node, Pod
from archipel.sim._replay import DelayModel, Replay, find_period, fit_delays, replay, study

ONE_GPU = Node("g1", 8000, 8192, 1, "G")
TWO_GPUS = Node("g2", 8000, 8192, 2, "G")


def pod(
    name: str,
    created: float,
    deleted: float,
    gpus: int = 1,
    milli: int = 1000,
    scheduled: float | None = None,
    cpu: int = 1000,
) -> Pod:
    return Pod(name, cpu, 1024, gpus, milli if gpus else 0, created, scheduled, deleted)


def model(
    period: float = 10.0,
    first: float = 0.0,
    retry: float = 0.0,
    hazards: tuple[float, ...] = (),
    tail: float = 1.0,
) -> DelayModel:
    return DelayModel(period, (first,), (retry,), hazards, tail, 0)


# each case: nodes, pods, model, and per pod the delay (bound - created) and node, or None
CASES = {
    "fits at creation": (
        [ONE_GPU], [pod("a", 5, 100)], model(), {"a": (0.0, 0)},
    ),
    "waits for a whole GPU, tried every period": (
        # a holds the GPU until 25; b tries at 3, 13, 23 (no room) and binds at 33
        [ONE_GPU], [pod("a", 0, 25), pod("b", 3, 100)], model(), {"a": (0.0, 0), "b": (30.0, 0)},
    ),
    "two shares of one GPU": (
        [ONE_GPU], [pod("a", 0, 50, milli=600), pod("b", 1, 50, milli=400)], model(),
        {"a": (0.0, 0), "b": (0.0, 0)},
    ),
    "a share that does not fit waits": (
        [ONE_GPU], [pod("a", 0, 25, milli=600), pod("b", 3, 50, milli=500)], model(),
        {"a": (0.0, 0), "b": (30.0, 0)},
    ),
    "deleted before it fits: never scheduled": (
        # b tries at 1 and 11, is deleted at 15
        [ONE_GPU], [pod("a", 0, 100), pod("b", 1, 15)], model(), {"a": (0.0, 0), "b": None},
    ),
    "a deletion frees room before a try at the same instant": (
        [ONE_GPU], [pod("a", 0, 10), pod("b", 0, 50)], model(), {"a": (0.0, 0), "b": (10.0, 0)},
    ),
    "a try at the deletion instant comes too late": (
        [ONE_GPU], [pod("a", 0, 100), pod("b", 5, 15)], model(), {"a": (0.0, 0), "b": None},
    ),
    "pods tried at one instant go in creation order": (
        [ONE_GPU], [pod("a", 0, 100), pod("b", 0, 100)], model(), {"a": (0.0, 0), "b": None},
    ),
    "blocked tries: bound at the third": (
        [ONE_GPU], [pod("a", 7, 100)], model(hazards=(0.0, 0.0)), {"a": (20.0, 0)},
    ),
    "latencies: a first try after 2 s, a later one 1 s before its grid time": (
        [ONE_GPU], [pod("a", 7, 100)], model(first=2.0, retry=-1.0, hazards=(0.0,)),
        {"a": (9.0, 0)},
    ),
    "never bound when every try is blocked": (
        [ONE_GPU], [pod("a", 0, 95)], model(tail=0.0), {"a": None},
    ),
    "a pod too big for every node is never scheduled": (
        [ONE_GPU], [pod("a", 0, 30, gpus=2)], model(), {"a": None},
    ),
    "room on the second node": (
        # c needs both of the second node's GPUs, one of which b holds until 20
        [ONE_GPU, TWO_GPUS], [pod("a", 0, 50), pod("b", 0, 20), pod("c", 0, 50, gpus=2)],
        model(), {"a": (0.0, 0), "b": (0.0, 1), "c": (20.0, 1)},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("nodes", "pods", "delays", "want"),
                         list(CASES.values()), ids=list(CASES))  # fmt: skip
def test_scheduler_cases(
    nodes: list[Node],
    pods: list[Pod],
    delays: DelayModel,
    want: dict[str, tuple[float, int] | None],
) -> None:
    run = replay(pods, nodes, delays, np.random.default_rng(0))
    got = {
        p.name: None if b is None or pl is None else (b - p.created, pl.node)
        for p, b, pl in zip(run.pods, run.bound, run.placements, strict=True)
    }
    assert got == want


def test_the_retry_period_is_the_one_that_lines_up_the_delays() -> None:
    # tries every 34.5 s, bound 0 to 3 s after one; exact multiples tie with 17.25 s
    assert find_period([34.5, 69.0, 103.5]) == pytest.approx(34.5)
    assert find_period([0.0, 1.0, 35.0, 36.5, 70.0, 71.0, 105.5, 138.0]) == pytest.approx(
        34.5, abs=0.6
    )
    assert find_period([0.0, 3.0]) == 120.0  # nobody waited for a retry


def test_calibration_counts_a_never_scheduled_pod_at_every_try_before_its_deletion() -> None:
    pods = [
        *(pod(f"s{i}", 0, 1000, scheduled=d) for i, d in enumerate([0, 0, 2, 34, 36, 70])),
        pod("late", 0, 50),  # tried at 0 and ~35, deleted before ~70: two failed tries
        pod("quick", 0, 5),  # tried at 0 only
    ]
    fitted = fit_delays(pods, min_at_risk=1)
    assert fitted.period == pytest.approx(35.0, abs=1.0)
    # try 0: 3 bound of 8 reached; try 1: 2 of 4 (3 bound later + "late"); try 2: 1 of 1
    assert fitted.hazards == pytest.approx((3 / 8, 2 / 4, 1 / 1))
    assert fitted.first == (0.0, 0.0, 2.0)
    assert len(fitted.retry) == 3
    assert fitted.fitted_on == 8
    pooled = fit_delays(pods, min_at_risk=2)  # try 2 was reached by one pod only
    assert pooled.hazards == pytest.approx((3 / 8, 2 / 4))
    assert pooled.tail == pytest.approx(1.0)
    assert fit_delays(pods).hazards == ()  # the default needs 30 pods: all pooled
    assert fit_delays(pods).tail == pytest.approx(6 / 13)


def test_calibration_needs_a_scheduled_pod() -> None:
    with pytest.raises(InputError, match="nothing to fit"):
        fit_delays([pod("a", 0, 10)])


def test_the_study_judges_only_pods_it_did_not_fit_on() -> None:
    pods = [pod(f"p{i}", 10.0 * i, 10.0 * i + 500, scheduled=10.0 * i + i % 3) for i in range(40)]
    result = study(pods, [TWO_GPUS] * 40, seed=3)
    assert result.model.fitted_on == 20
    assert result.calibration.pods == result.judged.pods == 20
    assert result.split == pytest.approx(195.0)
    assert result.baseline.simulated == (0.0,) * 20


# -- invariants of any replay --------------------------------------------------------------


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[Node], list[Pod], DelayModel]:
    nodes = [
        Node(
            f"n{i}",
            draw(st.integers(0, 4)) * 1000,
            draw(st.integers(0, 4)) * 1024,
            draw(st.integers(0, 3)),
            "G",
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    pods = []
    for i in range(draw(st.integers(1, 12))):
        gpus = draw(st.sampled_from([0, 1, 1, 2]))
        milli = draw(st.sampled_from([250, 500, 700, 1000])) if gpus == 1 else 1000
        created = draw(st.integers(0, 60)) / 2
        pods.append(
            Pod(f"p{i}", draw(st.integers(0, 3)) * 1000, draw(st.integers(0, 3)) * 1024, gpus,
                milli if gpus else 0, created, None, created + draw(st.integers(0, 120)) / 2)
        )  # fmt: skip
    pods.sort(key=lambda p: (p.created, p.name))
    period = draw(st.sampled_from([1.0, 5.0, 7.5]))
    hazards = tuple(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), max_size=3)))
    delays = DelayModel(period, (0.0, period / 3), (-period / 2, 0.0, period / 4), hazards,
                        draw(st.sampled_from([0.3, 1.0])), 0)  # fmt: skip
    return nodes, pods, delays


def _usage_never_exceeds_capacity(run: Replay, nodes: list[Node]) -> None:
    held = [
        (b, p.deleted, pl)
        for p, b, pl in zip(run.pods, run.bound, run.placements, strict=True)
        if b is not None and pl is not None
    ]
    for t, _, _ in held:  # usage only rises at a bind: check at each
        cpu: dict[int, int] = defaultdict(int)
        memory: dict[int, int] = defaultdict(int)
        gpu: dict[tuple[int, int], int] = defaultdict(int)
        for start, end, pl in held:
            if start <= t < end:
                cpu[pl.node] += pl.cpu_milli
                memory[pl.node] += pl.memory_mib
                for g in pl.gpus:
                    gpu[pl.node, g] += pl.gpu_milli
        assert all(cpu[n] <= nodes[n].cpu_milli for n in cpu)
        assert all(memory[n] <= nodes[n].memory_mib for n in memory)
        assert all(0 <= g < nodes[n].gpus and used <= 1000 for (n, g), used in gpu.items())


@settings(max_examples=150, deadline=None)
@given(traces(), st.integers(0, 2**32 - 1))
def test_any_replay_keeps_every_node_within_capacity_and_time(
    trace: tuple[list[Node], list[Pod], DelayModel], seed: int
) -> None:
    nodes, pods, delays = trace
    run = replay(pods, nodes, delays, np.random.default_rng(seed))
    _usage_never_exceeds_capacity(run, nodes)
    for p, b, pl in zip(run.pods, run.bound, run.placements, strict=True):
        assert (b is None) == (pl is None)
        if b is not None and pl is not None:
            assert p.created <= b < p.deleted  # never before creation, never after deletion
            assert len(pl.gpus) == p.num_gpu
            assert pl.gpu_milli == (p.gpu_milli if p.num_gpu == 1 else 1000 * (p.num_gpu > 0))
    assert run.tries == sum(b is not None for b in run.bound) + sum(run.misses.values())


@settings(max_examples=50, deadline=None)
@given(traces(), st.integers(0, 2**32 - 1))
def test_a_replay_is_a_function_of_its_seed(
    trace: tuple[list[Node], list[Pod], DelayModel], seed: int
) -> None:
    nodes, pods, delays = trace
    first = replay(pods, nodes, delays, np.random.default_rng(seed))
    again = replay(pods, nodes, delays, np.random.default_rng(seed))
    assert first == again
