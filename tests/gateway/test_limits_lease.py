"""Leased request units: shared limits without a Redis round trip per request.

The contract table of ``test_limits_contract.py`` runs against the leasing
limiter too (it is one of the implementations there). Here: the bounds the
module docstring states, each as a test, and that leasing does save the trips.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.gateway._config import Limits
from archipel.gateway._limits import InProcessLimiter
from archipel.gateway._limits_lease import LeasingLimiter

from .harness import REDIS_URL, delete_prefix, unique_prefix
from .test_limits_contract import T0, charge, open_leasing

CLOSED = "redis://127.0.0.1:1"


def test_a_burst_gets_exactly_the_limit_across_processes(prefix: str) -> None:
    async def main() -> None:
        limits = {"t": Limits(requests_per_minute=10)}
        async with open_leasing(prefix, limits) as one, open_leasing(prefix, limits) as two:
            waits = await asyncio.gather(
                *(limiter.admit("t", T0) for _ in range(15) for limiter in (one, two))
            )
            assert sum(w == 0 for w in waits) == 10

    asyncio.run(main())


def test_leasing_saves_round_trips(prefix: str) -> None:
    async def main() -> None:
        async with open_leasing(prefix, {"t": Limits(requests_per_minute=6000)}, lease=50) as lim:
            waits = [await lim.admit("t", T0 + i * 0.001) for i in range(1000)]
            await lim.flush()
            assert waits == [0.0] * 1000
            # one trip per half lease, about: 1000 admits at most 1000 / 25 trips (and a few)
            assert lim.round_trips <= 1000 // 25 + 2

    asyncio.run(main())


def test_token_charges_are_sent_together(prefix: str) -> None:
    async def main() -> None:
        async with open_leasing(prefix, {"t": Limits(tokens_per_minute=10**6)}) as lim:
            for _ in range(100):
                lim.charge_tokens("t", 10, T0)
            await lim.flush()
            assert lim.round_trips == 1  # a hundred charges, one call

    asyncio.run(main())


def test_unused_units_go_back_after_lease_seconds(prefix: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        limits = {"t": Limits(requests_per_minute=2)}
        async with open_leasing(prefix, limits, lease=2, lease_seconds=1.0) as one:
            assert await one.admit("t", T0) == 0  # took 2 units, holds 1
            async with open_leasing(prefix, limits, lease=2) as two:
                # the other process finds the bucket empty while the unit is held
                assert await two.admit("t", T0 + 0.5) == pytest.approx((1 - 0.5 / 30) * 30)
                # after lease_seconds, one's next call gives the unit back (and takes it again)
                assert await one.admit("t", T0 + 2) == 0
                await one.flush()
                level = float(redis_client.hget(f"{prefix}:t", "rl") or b"nan")
                # 0 at T0, 2 s of refill at 1/30 per second, +1 given back, -1 taken again
                assert level == pytest.approx(2 / 30, abs=1e-9)

    asyncio.run(main())


def test_a_tenant_in_token_debt_is_refused_without_a_round_trip(prefix: str) -> None:
    async def main() -> None:
        async with open_leasing(prefix, {"t": Limits(tokens_per_minute=600)}) as lim:
            assert await lim.admit("t", T0) == 0
            await charge(lim, "t", 900, T0)  # 300 tokens of debt at 10 per second
            trips = lim.round_trips
            assert await lim.admit("t", T0) == pytest.approx(30.1)
            assert await lim.admit("t", T0 + 10) == pytest.approx(20.1)
            assert lim.round_trips == trips

    asyncio.run(main())


def test_redis_down_falls_back_to_per_process_limits() -> None:
    async def main() -> None:
        limits = {"t": Limits(requests_per_minute=2)}
        limiter = LeasingLimiter(CLOSED, "p", limits, lease=4, retry_interval=60)
        await limiter.start()
        assert limiter.degraded
        waits = [await limiter.admit("t", T0) for _ in range(3)]
        assert [w == 0 for w in waits] == [True, True, False]
        assert limiter.fallbacks == 3
        await limiter.close()

    asyncio.run(main())


def test_a_lease_below_one_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="lease must be at least 1"):
        LeasingLimiter(REDIS_URL, "p", {}, lease=0)


# -- the bound over time, against the in-process buckets ------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 5, allow_nan=False)),
        st.tuples(st.just("admit"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=examples(40), deadline=None)
@given(rpm=st.integers(1, 30), lease=st.integers(1, 8), ops=operations)
def test_one_process_admits_the_in_process_count_give_or_take_one_lease(
    redis_client: redis.Redis, rpm: int, lease: int, ops: list[tuple[str, float]]
) -> None:
    limits = {"t": Limits(requests_per_minute=rpm)}
    name = unique_prefix()

    async def main() -> tuple[int, int]:
        local = InProcessLimiter(limits, T0)
        now, admitted_local, admitted_leasing = T0, 0, 0
        async with open_leasing(name, limits, lease=lease) as leasing:
            for op, value in ops:
                if op == "advance":
                    now += value
                    continue
                admitted_local += await local.admit("t", now) == 0
                admitted_leasing += await leasing.admit("t", now) == 0
                await leasing.flush()
        return admitted_local, admitted_leasing

    try:
        admitted_local, admitted_leasing = asyncio.run(main())
    finally:
        delete_prefix(redis_client, name)
    size = min(lease, rpm)
    assert admitted_local - size <= admitted_leasing <= admitted_local + size


def test_a_reload_that_removes_a_waiting_tenant_lets_its_request_through(prefix: str) -> None:
    async def main() -> float:
        async with open_leasing(prefix, {"t": Limits(requests_per_minute=1)}, lease=1) as lim:
            assert await lim.admit("t", T0) == 0  # the one unit is spent: the next must ask
            waiting = asyncio.ensure_future(lim.admit("t", T0))
            await asyncio.sleep(0)  # it is waiting for Redis
            lim.set_limits({})  # the tenant is gone from the configuration meanwhile
            return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()) == 0  # admitted, as before the reload: it does not spin forever


def test_a_lease_without_shared_limits_is_refused() -> None:
    from archipel.gateway._config import RateLimits

    with pytest.raises(ValueError, match="lease takes units from limits shared through Redis"):
        RateLimits(backend="local", lease=10)


def test_units_a_silent_tenant_left_go_back_without_another_request(
    prefix: str, redis_client: redis.Redis
) -> None:
    """A tenant takes a lease of 2, uses 1, and sends nothing more: the sweep gives the
    other unit back within two lease periods (0.2 s each here), so another process may
    use it."""

    async def main() -> None:
        limits = {"t": Limits(requests_per_minute=2)}
        async with open_leasing(prefix, limits, lease=2, lease_seconds=0.2, sweep=True) as one:
            now = asyncio.get_running_loop().time()
            assert await one.admit("t", now) == 0  # took 2 units, holds 1
            assert float(redis_client.hget(f"{prefix}:t", "rl") or b"nan") == pytest.approx(0)
            await asyncio.sleep(0.6)
            level = float(redis_client.hget(f"{prefix}:t", "rl") or b"nan")
            assert level >= 1  # the unit is back (and a little refill)
            async with open_leasing(prefix, limits, lease=1) as two:
                assert await two.admit("t", asyncio.get_running_loop().time()) == 0

    asyncio.run(main())


def test_pending_charges_of_many_tenants_go_out_at_once(prefix: str) -> None:
    """Ten tenants' charges: ten calls in flight together, not one after the other."""

    async def main() -> None:
        tenants = {f"t{i}": Limits(tokens_per_minute=10**6) for i in range(10)}
        async with open_leasing(prefix, tenants) as lim:
            script = lim._sync_script
            assert script is not None
            in_flight = most = 0

            async def slow(**kwargs: object) -> object:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                await asyncio.sleep(0.05)
                in_flight -= 1
                return await script(**kwargs)  # type: ignore[arg-type]

            lim._sync_script = slow  # type: ignore[assignment]
            for tenant in tenants:
                lim.charge_tokens(tenant, 10, T0)
            await lim.flush()
            assert most == len(tenants)
            assert all(lease.pending == 0 for lease in lim._leases.values())

    asyncio.run(main())


def test_the_script_is_in_redis_once_the_limiter_has_started(
    prefix: str, redis_client: redis.Redis
) -> None:
    """Loaded at start: the first request does not pay for loading it."""
    from archipel.gateway._limits_lease import _SYNC

    sha = redis_client.script_load(_SYNC)
    redis_client.script_flush()

    async def main() -> None:
        async with open_leasing(prefix, {"t": Limits(requests_per_minute=60)}):
            assert redis_client.script_exists(sha) == [True]

    asyncio.run(main())
