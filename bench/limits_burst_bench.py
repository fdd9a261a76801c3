"""Over-admission of shared rate limits under a burst: in process, Redis per request, leased.

One tenant limited to ``--rpm`` requests a minute; ``--processes`` limiters (each one a
gateway process's, all on the test Redis at 127.0.0.1:6379) try to admit a request every
millisecond of the caller's time for ``--seconds``, in turns. It prints how many each
configuration admitted, against what one exact bucket admits over the same window (its
capacity, a minute's worth, plus the refill), and against the leasing limiter's stated
bound: at most ``processes x lease`` units more (archipel.gateway._limits_lease).

The caller's time is given, not read, so the figures do not depend on the machine.

Run: .venv/bin/python bench/limits_burst_bench.py [--rpm 600] [--lease 50] [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from archipel.gateway._config import Limits
from archipel.gateway._limits import InProcessLimiter
from archipel.gateway._limits_lease import LeasingLimiter
from archipel.gateway._limits_redis import RedisLimiter

REDIS = "redis://127.0.0.1:6379"
T0 = 1_000_000.0


async def burst(limiters: list[object], seconds: float, step: float = 0.001) -> int:
    admitted, t = 0, T0
    while t < T0 + seconds:
        for limiter in limiters:
            if await limiter.admit("t", t) == 0:  # type: ignore[attr-defined]
                admitted += 1
        t += step
    return admitted


async def main_async(rpm: int, lease: int, processes: int, seconds: float) -> None:
    limits = {"t": Limits(requests_per_minute=rpm)}
    exact = await burst([InProcessLimiter(limits, T0)], seconds)
    prefix = f"archipel-bench:{uuid.uuid4().hex[:8]}"
    per_request = [RedisLimiter(REDIS, prefix + ":r", limits) for _ in range(processes)]
    leased = [
        LeasingLimiter(REDIS, prefix + ":l", limits, lease=lease, sweep=False)
        for _ in range(processes)
    ]
    for limiter in (*per_request, *leased):
        await limiter.start()
    try:
        shared = await burst(list(per_request), seconds)
        leasing = await burst(list(leased), seconds)
        for limiter in leased:
            await limiter.flush()
    finally:
        for limiter in (*per_request, *leased):
            await limiter.close()
    bound = exact + processes * lease
    print(f"one tenant at {rpm} requests a minute, {processes} processes, a burst of "
          f"{seconds:g} s (an admit every ms from each, in turns)")  # fmt: skip
    print("limiter | admitted | over one exact bucket | stated bound")
    print(f"in process, one exact bucket | {exact} | - | -")
    print(f"Redis, a round trip per request | {shared} | {shared - exact:+d} | 0")
    print(f"Redis, leased ({lease} units) | {leasing} | {leasing - exact:+d} | "
          f"+{processes * lease} (at most {bound})")  # fmt: skip
    print("within the bound" if leasing <= bound else "BOUND EXCEEDED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--lease", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.rpm, args.lease, args.processes, args.seconds))


if __name__ == "__main__":
    main()
