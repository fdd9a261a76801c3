"""Rate limits shared by several gateway processes through Redis, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

from archipel.core import CatalogSnapshot
from archipel.gateway import hash_key
from archipel.policy import Policy

from .harness import REDIS_URL, TENANTS, running


def _limited(rpm: int) -> dict[str, Any]:
    tenants: dict[str, Any] = {
        t: {"key_sha256": [hash_key(key)], "data_class": cls} for t, (key, cls) in TENANTS.items()
    }
    tenants["lab"]["limits"] = {"requests_per_minute": rpm}
    return tenants


def test_two_gateways_share_one_limit(
    snapshot: CatalogSnapshot, policy: Policy, prefix: str
) -> None:
    shared = {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix}

    async def main() -> list[int]:
        async with (
            running(snapshot, policy, rate_limits=shared, tenants=_limited(4)) as a,
            running(snapshot, policy, rate_limits=shared, tenants=_limited(4)) as b,
        ):
            statuses = []
            for gw in (a, b, a, b, a, b):
                statuses.append((await gw.chat("lab")).status)
            assert a.gateway.shared is not None and not a.gateway.shared.degraded
            metrics = await (await a.http.get(f"{a.url}/metrics")).text()
            assert "archipel_gateway_rate_limit_degraded 0.0" in metrics
            return statuses

    assert asyncio.run(main()) == [200, 200, 200, 200, 429, 429]


def test_a_gateway_whose_redis_is_down_still_enforces_limits(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    nowhere = {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "prefix": "x"}

    async def main() -> list[int]:
        async with running(snapshot, policy, rate_limits=nowhere, tenants=_limited(2)) as gw:
            statuses = [(await gw.chat("lab")).status for _ in range(3)]
            metrics = await (await gw.http.get(f"{gw.url}/metrics")).text()
            assert "archipel_gateway_rate_limit_degraded 1.0" in metrics
            assert "archipel_gateway_rate_limit_fallbacks_total 3.0" in metrics
            return statuses

    assert asyncio.run(main()) == [200, 200, 429]


def test_tokens_are_charged_to_the_shared_bucket(
    snapshot: CatalogSnapshot, policy: Policy, prefix: str
) -> None:
    """The fake answers with usage; the tokens overdraw the shared bucket for both gateways."""
    shared = {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix}
    tenants = _limited(100)
    tenants["lab"]["limits"] = {"tokens_per_minute": 5}

    async def main() -> list[int]:
        async with (
            running(snapshot, policy, rate_limits=shared, tenants=tenants) as a,
            running(snapshot, policy, rate_limits=shared, tenants=tenants) as b,
        ):
            first = (await a.chat("lab")).status
            for _ in range(50):  # the charge goes to Redis off the request path
                if (await b.chat("lab")).status == 429:
                    return [first, 429]
                await asyncio.sleep(0.01)
            return [first, 200]

    assert asyncio.run(main()) == [200, 429]
