"""A pool of replicas serving requests first come first served: hand-worked cases, the
Erlang C formula of an M/M/c queue, and what preemption and draining do."""

from __future__ import annotations

import math
import random
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.sim._kernel import Kernel
from archipel.sim._queue import ReplicaPool, Request

START = datetime(2026, 1, 1)


def serve(replicas: int, requests: list[tuple[float, float]]) -> list[Request]:
    """``(arrival, service)`` pairs through a fixed pool; the requests in arrival order."""
    kernel = Kernel(START)
    pool = ReplicaPool(kernel, replicas)
    made: list[Request] = []
    for arrival, service in requests:
        kernel.at(arrival, lambda s=service: made.append(pool.arrive(s)))  # type: ignore[misc]
    kernel.run()
    return made


def test_two_replicas_by_hand() -> None:
    """Three requests of 10 s at 0 and one of 1 s at 5, on two replicas: the third waits
    for the first free replica at 10, the fourth for the second, also free at 10."""
    done = serve(2, [(0, 10), (0, 10), (0, 10), (5, 1)])
    assert [r.wait for r in done] == [0, 0, 10, 5]
    assert [r.latency for r in done] == [10, 10, 20, 6]


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> tuple[float, float]:
    """The probability that a request waits, and the mean wait, of an M/M/c queue."""
    a = arrival_rate / service_rate  # offered load, in servers
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(a**k / math.factorial(k) for k in range(servers)) + top
    waits = top / bottom
    return waits, waits / (servers * service_rate - arrival_rate)


@pytest.mark.parametrize(("servers", "load"), [(1, 0.5), (4, 0.75), (10, 0.8)])
def test_poisson_arrivals_and_exponential_service_follow_erlang_c(
    servers: int, load: float
) -> None:
    rng = random.Random(f"mmc:{servers}:{load}")
    mu = 1.0
    lam = load * servers * mu
    t, requests = 0.0, []
    for _ in range(60_000):
        t += rng.expovariate(lam)
        requests.append((t, rng.expovariate(mu)))
    done = serve(servers, requests)[5_000:]  # past the start, empty, of the queue
    p_wait, mean_wait = erlang_c(servers, lam, mu)
    measured = sum(r.wait > 0 for r in done) / len(done)
    assert measured == pytest.approx(p_wait, abs=0.03)
    assert sum(r.wait for r in done) / len(done) == pytest.approx(mean_wait, rel=0.1)


def test_a_preempted_replica_puts_its_request_back_at_the_head() -> None:
    """One replica serving a 10 s request from 0 is preempted at 2; another is ready at 5:
    the request starts over there, done at 15."""
    kernel = Kernel(START)
    pool = ReplicaPool(kernel, 1)
    kernel.at(0, lambda: pool.arrive(10))
    kernel.at(2, lambda: pool.resize(0, preempt=True))
    kernel.at(5, lambda: pool.resize(1))
    kernel.run()
    [request] = pool.finished
    assert (request.started, request.done, request.restarts) == (5, 15, 1)
    assert (request.wait, request.latency) == (5, 15)


def test_a_drained_replica_finishes_its_request_then_leaves() -> None:
    kernel = Kernel(START)
    pool = ReplicaPool(kernel, 1)
    kernel.at(0, lambda: pool.arrive(10))
    kernel.at(1, lambda: pool.arrive(10))
    kernel.at(2, lambda: pool.resize(0))
    kernel.at(20, lambda: pool.resize(1))
    kernel.run()
    first, second = pool.finished
    assert (first.done, first.restarts) == (10, 0)
    assert (second.started, second.done) == (20, 30)


def test_a_replica_added_takes_a_waiting_request_at_once() -> None:
    kernel = Kernel(START)
    pool = ReplicaPool(kernel, 1)
    kernel.at(0, lambda: pool.arrive(10))
    kernel.at(0, lambda: pool.arrive(10))
    kernel.at(3, lambda: pool.resize(2))
    kernel.run()
    assert sorted((r.started, r.done) for r in pool.finished) == [(0, 10), (3, 13)]


@given(
    servers=st.integers(1, 4),
    requests=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), min_size=1, max_size=40),
)
def test_never_more_busy_than_replicas_and_first_come_first_served(
    servers: int, requests: list[tuple[int, int]]
) -> None:
    ordered = sorted(requests, key=lambda r: r[0])
    done = serve(servers, [(float(a), float(s)) for a, s in ordered])
    starts = [r.started for r in done]
    assert starts == sorted(starts)  # in arrival order
    for r in done:  # at any start, at most `servers` requests are being served
        busy = sum(1 for o in done if o.started <= r.started < o.done)  # type: ignore[operator]
        assert busy <= servers
    assert all(r.latency == r.wait + r.service for r in done)
