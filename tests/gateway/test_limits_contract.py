"""One contract for the per-tenant rate limits, in process and shared through Redis.

The table of cases runs against every implementation of the ``Limiter`` protocol:
``InProcessLimiter``, ``RedisLimiter`` on a real Redis and ``LeasingLimiter``
(which takes request units four at a time; its own bounds are in
``test_limits_lease.py``); a property test
checks that the two give the same decisions for random traffic. Redis tests
are skipped when Redis is not reachable, unless ``CI`` is set: then they fail.

An unknown tenant is a caller error for ``admit`` (``KeyError``, as the lookup
of its in-process limiter would be; the server only admits authenticated,
hence configured, tenants) and is ignored by ``charge_tokens`` (a request
admitted before a reload removed its tenant).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from archipel.gateway._config import Limits
from archipel.gateway._limits import InProcessLimiter, Limiter, TenantLimiter
from archipel.gateway._limits_lease import LeasingLimiter
from archipel.gateway._limits_redis import IDLE_MARGIN, RedisLimiter

from .harness import REDIS_URL, delete_prefix, unique_prefix

CLOSED = "redis://127.0.0.1:1"  # nothing listens there: connections are refused
T0 = 1_700_000_000.0  # wall-clock seconds, so that precision is tested at a realistic magnitude


async def charge(limiter: Limiter, tenant: str, tokens: int, now: float) -> None:
    """Charge, and wait until the charge has arrived (a shared one goes in the background)."""
    limiter.charge_tokens(tenant, tokens, now)
    await limiter.flush()


Opener = Callable[[Mapping[str, Limits]], AbstractAsyncContextManager[Limiter]]


@asynccontextmanager
async def open_redis(
    url: str, prefix: str, limits: Mapping[str, Limits]
) -> AsyncIterator[RedisLimiter]:
    """A started ``RedisLimiter`` that must not have fallen back by the end."""
    limiter = RedisLimiter(url, prefix, limits)
    await limiter.start()
    try:
        yield limiter
        assert (limiter.fallbacks, limiter.degraded) == (0, False), "Redis failed during the test"
    finally:
        await limiter.close()


@asynccontextmanager
async def open_leasing(
    prefix: str,
    limits: Mapping[str, Limits],
    lease: int = 4,
    lease_seconds: float = 1.0,
    sweep: bool = False,
) -> AsyncIterator[LeasingLimiter]:
    """A started ``LeasingLimiter`` on the test Redis that must not have fallen back.

    Its background sweep is off unless asked for: the tests give the limiter their own
    times, and a sweep would mix in the loop's."""
    limiter = LeasingLimiter(
        REDIS_URL, prefix, limits, lease=lease, lease_seconds=lease_seconds, sweep=sweep
    )
    await limiter.start()
    try:
        yield limiter
        assert (limiter.fallbacks, limiter.degraded) == (0, False), "Redis failed during the test"
    finally:
        await limiter.close()


@pytest.fixture(params=["in_process", "redis", "redis_leasing"])
def open_limiter(request: pytest.FixtureRequest) -> Opener:
    if request.param == "in_process":

        @asynccontextmanager
        async def local(limits: Mapping[str, Limits]) -> AsyncIterator[Limiter]:
            yield InProcessLimiter(limits, T0)

        return local
    name: str = request.getfixturevalue("prefix")
    if request.param == "redis_leasing":
        return lambda limits: open_leasing(name, limits)
    return lambda limits: open_redis(REDIS_URL, name, limits)


# -- the contract, as a table ------------------------------------------------


@dataclass(frozen=True)
class Admit:
    at: float  # seconds after T0
    expect: float | type[Exception]  # the wait, or the exception raised
    tenant: str = "t"


@dataclass(frozen=True)
class Charge:
    at: float
    tokens: int
    tenant: str = "t"


@dataclass(frozen=True)
class Case:
    limits: dict[str, Limits]
    steps: list[Admit | Charge] = field(default_factory=list)


def rpm(n: int) -> Limits:
    return Limits(requests_per_minute=n)


def tpm(n: int) -> Limits:
    return Limits(tokens_per_minute=n)


CASES = {
    "under_limit_admits": Case({"t": rpm(5)}, [Admit(0, 0.0)] * 5),
    "rpm_exhausted_waits_60_over_rpm": Case(
        {"t": rpm(4)}, [*[Admit(0, 0.0)] * 4, Admit(0, 15.0), Admit(0, 15.0)]
    ),
    "refill_after_time_passes": Case(
        {"t": rpm(2)},
        [
            Admit(0, 0.0),
            Admit(0, 0.0),
            Admit(0, 30.0),
            Admit(15, 15.0),
            Admit(30, 0.0),
            Admit(30, 30.0),
        ],
    ),
    "refill_stops_at_capacity": Case(
        {"t": rpm(2)}, [Admit(0, 0.0), Admit(3600, 0.0), Admit(3600, 0.0), Admit(3600, 30.0)]
    ),
    "tokens_overdrawn_refuse_until_positive": Case(
        {"t": tpm(600)},
        [
            Admit(0, 0.0),
            Charge(0, 900),  # one request may overdraw: -300 tokens at 10 per second
            Admit(0, 30.1),  # until the level is above 0, i.e. one token more
            Admit(20, 10.1),
            Admit(30.5, 0.0),
        ],
    ),
    "tokens_within_budget_admit": Case(
        {"t": tpm(600)}, [Admit(0, 0.0), Charge(0, 599), Admit(0, 0.0), Charge(0, 1), Admit(0, 0.1)]
    ),
    "token_refusal_takes_no_request": Case(
        {"t": Limits(requests_per_minute=2, tokens_per_minute=600)},
        [
            Admit(0, 0.0),  # one request left
            Charge(0, 700),
            Admit(0, 10.1),  # refused on tokens: the request stays in the bucket
            Admit(11, 0.0),
            Admit(11, 19.0),  # 1 + 11 s * 2/60 - 1 = 0.37 left: 0.63 unit at 2/60 per second
        ],
    ),
    "tenant_without_limits_always_admits": Case(
        {"t": Limits()}, [Charge(0, 10**9), *[Admit(0, 0.0)] * 100]
    ),
    "tenants_are_independent": Case(
        {"a": rpm(1), "b": rpm(1)},
        [Admit(0, 0.0, "a"), Admit(0, 60.0, "a"), Admit(0, 0.0, "b"), Admit(0, 60.0, "b")],
    ),
    "unknown_tenant_admit_raises": Case({"t": rpm(1)}, [Admit(0, KeyError, "ghost")]),
    "unknown_tenant_charge_is_ignored": Case(
        {"t": tpm(60)}, [Charge(0, 10**6, "ghost"), Admit(0, 0.0)]
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_contract(open_limiter: Opener, case: Case) -> None:
    async def main() -> None:
        async with open_limiter(case.limits) as limiter:
            for i, step in enumerate(case.steps):
                now = T0 + step.at
                if isinstance(step, Charge):
                    await charge(limiter, step.tenant, step.tokens, now)
                elif isinstance(step.expect, type):
                    with pytest.raises(step.expect):
                        await limiter.admit(step.tenant, now)
                else:
                    wait = await limiter.admit(step.tenant, now)
                    assert wait == pytest.approx(step.expect), f"step {i}: {step}"

    asyncio.run(main())


# -- the Redis limiter is the in-process one, shared --------------------------

limit_values = st.one_of(st.none(), st.integers(1, 120))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 40, allow_nan=False)),
        st.tuples(st.just("admit"), st.just(0)),
        st.tuples(st.just("charge"), st.integers(0, 3000)),
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(rpm_=limit_values, tpm_=st.one_of(st.none(), st.integers(1, 5000)), ops=operations)
def test_redis_decides_as_in_process(
    redis_client: redis.Redis, rpm_: int | None, tpm_: int | None, ops: list[tuple[str, float]]
) -> None:
    limits = {"t": Limits(requests_per_minute=rpm_, tokens_per_minute=tpm_)}
    name = unique_prefix()

    async def main() -> None:
        local = InProcessLimiter(limits, T0)
        now = T0
        async with open_redis(REDIS_URL, name, limits) as shared:
            for op, value in ops:
                if op == "advance":
                    now += value
                elif op == "admit":
                    expected = await local.admit("t", now)
                    assert await shared.admit("t", now) == pytest.approx(expected, abs=1e-9)
                else:
                    await charge(local, "t", int(value), now)
                    await charge(shared, "t", int(value), now)

    try:
        asyncio.run(main())
    finally:
        delete_prefix(redis_client, name)


def test_two_processes_share_one_limit_exactly(prefix: str) -> None:
    limits = {"t": rpm(10)}

    async def main() -> None:
        async with (
            open_redis(REDIS_URL, prefix, limits) as one,
            open_redis(REDIS_URL, prefix, limits) as two,
        ):
            # concurrent admits from both "processes": exactly 10 go ahead
            waits = await asyncio.gather(
                *(limiter.admit("t", T0) for _ in range(15) for limiter in (one, two))
            )
            assert sum(w == 0 for w in waits) == 10
            assert all(w == pytest.approx(6.0) for w in waits if w)
            # a unit taken in one process is missing in the other
            assert await one.admit("t", T0 + 6) == 0
            assert await two.admit("t", T0 + 6) == pytest.approx(6.0)
            assert await two.admit("t", T0 + 12) == 0

    asyncio.run(main())


def test_key_layout_and_expiry(redis_client: redis.Redis, prefix: str) -> None:
    async def main() -> None:
        limits = {"t": Limits(requests_per_minute=7, tokens_per_minute=600)}
        async with open_redis(REDIS_URL, prefix, limits) as limiter:
            assert await limiter.admit("t", T0) == 0
            await charge(limiter, "t", 60_000, T0)  # 59,400 tokens of debt: 99 minutes

    asyncio.run(main())
    assert list(redis_client.scan_iter(match=f"{prefix}:*")) == [f"{prefix}:t".encode()]
    state = {k.decode(): float(v) for k, v in redis_client.hgetall(f"{prefix}:t").items()}
    assert state == {"rl": 7.0 - 1, "rt": T0, "tl": 600.0 - 60_000, "tt": T0}
    full = (600 + 59_400) / 10  # the debt outlives the default margin
    assert (
        (full + IDLE_MARGIN - 5) * 1000
        < redis_client.pttl(f"{prefix}:t")
        <= (full + IDLE_MARGIN) * 1000
    )


def test_levels_keep_full_precision(redis_client: redis.Redis, prefix: str) -> None:
    # 7/60 per second has no short decimal form; 14 digits would drift from the in-process value
    limits = {"t": rpm(7)}
    local = TenantLimiter(limits["t"], T0)

    async def main() -> None:
        async with open_redis(REDIS_URL, prefix, limits) as limiter:
            for k in range(1, 30):
                now = T0 + k * 0.123456789
                assert await limiter.admit("t", now) == local.admit(now)  # exactly

    asyncio.run(main())
    level = float(redis_client.hget(f"{prefix}:t", "rl") or b"nan")
    assert local.requests is not None and level == local.requests.level


def test_clock_skew_refills_nothing_and_hands_out_no_time_twice(prefix: str) -> None:
    async def main() -> None:
        async with open_redis(REDIS_URL, prefix, {"t": rpm(2)}) as limiter:
            assert [await limiter.admit("t", T0 + 10) for _ in range(2)] == [0, 0]
            assert await limiter.admit("t", T0) == pytest.approx(30.0)  # a host 10 s behind
            assert await limiter.admit("t", T0 + 25) == pytest.approx(15.0)  # 15 s since T0+10

    asyncio.run(main())


def test_set_limits_keeps_state_and_clamps(prefix: str) -> None:
    async def main() -> None:
        limits = {"a": rpm(10), "b": rpm(1), "c": rpm(1), "gone": rpm(1)}
        async with open_redis(REDIS_URL, prefix, limits) as limiter:
            assert [await limiter.admit("a", T0) for _ in range(2)] == [0, 0]  # a: 8 left
            assert await limiter.admit("b", T0) == 0
            assert await limiter.admit("c", T0) == 0
            limiter.set_limits({"a": rpm(4), "b": rpm(1), "c": Limits(), "new": rpm(1)})
            # a: the level is clamped to the new capacity, then refills at the new rate
            assert [await limiter.admit("a", T0) for _ in range(4)] == [0, 0, 0, 0]
            assert await limiter.admit("a", T0) == pytest.approx(15.0)
            # b: unchanged, its state is kept
            assert await limiter.admit("b", T0) == pytest.approx(60.0)
            # c: now unlimited; new: starts full; gone: no longer configured
            assert [await limiter.admit("c", T0) for _ in range(3)] == [0, 0, 0]
            assert await limiter.admit("new", T0) == 0
            with pytest.raises(KeyError):
                await limiter.admit("gone", T0)
            # a raised limit keeps the level and refills up to the new capacity
            limiter.set_limits({"a": rpm(60)})
            assert await limiter.admit("a", T0) == pytest.approx(1.0)
            assert [await limiter.admit("a", T0 + 60) for _ in range(60)] == [0] * 60

    asyncio.run(main())


# -- failing open --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_redis_down_enforces_limits_per_process(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limits = {"r": rpm(2), "k": tpm(600), "free": Limits()}

    async def main() -> None:
        limiter = RedisLimiter(CLOSED, "p", limits, fallback_clock=clock, retry_interval=0)
        await limiter.start()  # does not raise
        assert limiter.degraded
        assert [await limiter.admit("r", T0) for _ in range(3)] == [0, 0, 30.0]
        assert await limiter.admit("k", T0) == 0
        await charge(limiter, "k", 900, T0)
        assert await limiter.admit("k", T0) == pytest.approx(30.1)
        assert limiter.fallbacks == 6
        assert await limiter.admit("free", T0) == 0  # no limits, no round trip, no fallback
        assert limiter.fallbacks == 6
        clock.now += 30  # the fallback runs on its own clock, not on the time passed in
        assert await limiter.admit("r", T0) == 0
        assert limiter.degraded
        await limiter.close()

    with caplog.at_level(logging.WARNING, logger="archipel.gateway"):
        asyncio.run(main())
    ours = [r for r in caplog.records if r.name == "archipel.gateway"]
    assert len(ours) == 1  # one warning per outage, not per request


def test_redis_timeout_falls_back_within_the_timeout() -> None:
    async def main() -> None:
        silent: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            silent.append(writer)  # accept, never answer

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limiter = RedisLimiter(f"redis://127.0.0.1:{port}", "p", {"t": rpm(1)}, timeout=0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await limiter.start()
        assert await limiter.admit("t", T0) == 0
        assert limiter.degraded and loop.time() - started < 1.0
        await limiter.close()
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_recovers_when_redis_answers_again(
    redis_client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    key = f"{prefix}:t"

    async def main() -> None:
        limiter = RedisLimiter(REDIS_URL, prefix, {"t": rpm(1)}, fallback_clock=clock)
        await limiter.start()
        redis_client.set(key, "not a hash")  # every script call now fails (WRONGTYPE)
        assert await limiter.admit("t", T0) == 0  # decided locally
        assert (limiter.degraded, limiter.fallbacks) == (True, 1)
        redis_client.delete(key)
        assert await limiter.admit("t", T0) == pytest.approx(60.0)  # within retry_interval: local
        assert limiter.fallbacks == 2
        clock.now += 1.0
        assert await limiter.admit("t", T0) == 0  # Redis again, with its own (full) bucket
        assert (limiter.degraded, limiter.fallbacks) == (False, 2)
        assert redis_client.exists(key)
        await limiter.close()

    with caplog.at_level(logging.WARNING, logger="archipel.gateway"):
        asyncio.run(main())
    ours = [r for r in caplog.records if r.name == "archipel.gateway"]
    messages = [r.getMessage() for r in ours]
    assert len(messages) == 2
    assert messages[0].startswith("rate limits: Redis failed (ResponseError: WRONGTYPE")
    assert messages[1].startswith("rate limits: Redis is back")
