"""A reload that moves a tenant to another data class moves its traffic with it.

A tenant's limits carry over a reload when they did not change; its data class
must never carry over: the new class decides where its next request may go.
"""

from __future__ import annotations

import asyncio

from archipel.core import CatalogSnapshot
from archipel.gateway import hash_key
from archipel.policy import Policy

from .harness import SITES, TENANTS, Running, Site, running

# the US replica is so heavily weighted that public traffic always prefers it
FAVOUR_US = {"ovh": SITES["ovh"], "aws": Site("aws", "us-east-1", "US", weight=1000.0)}


def _tenants(lab_class: str) -> dict[str, object]:
    out: dict[str, object] = {
        t: {"key_sha256": [hash_key(key)], "data_class": cls} for t, (key, cls) in TENANTS.items()
    }
    out["lab"] = {"key_sha256": [hash_key(TENANTS["lab"][0])], "data_class": lab_class}
    return out


def _served(gw: Running, tenant: str, since: int) -> set[str | None]:
    return {r.provider for r in gw.meter.records[since:] if r.tenant == tenant}


def test_a_tenant_moved_to_health_stops_using_a_us_replica_after_a_reload(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    async def main() -> None:
        # public data may use the US replica, and prefers it
        async with running(snapshot, policy, FAVOUR_US) as gw:
            for _ in range(4):
                assert (await gw.chat("lab")).status == 200
            assert _served(gw, "lab", 0) == {"aws"}

            config = gw.configure(FAVOUR_US, tenants=_tenants("health"))
            gw.gateway.loader = lambda: config
            assert await gw.gateway.reload()
            assert {
                t.data_class for t in gw.gateway.routing.tenants.values() if t.name == "lab"
            } == {"health"}
            since = len(gw.meter.records)
            for _ in range(4):
                assert (await gw.chat("lab")).status == 200
            assert _served(gw, "lab", since) == {"ovhcloud"}
            assert {r.data_class for r in gw.meter.records[since:]} == {"health"}

            # and back: the class follows the file both ways
            config = gw.configure(FAVOUR_US, tenants=_tenants("public"))
            gw.gateway.loader = lambda: config
            assert await gw.gateway.reload()
            since = len(gw.meter.records)
            for _ in range(4):
                assert (await gw.chat("lab")).status == 200
            assert _served(gw, "lab", since) == {"aws"}

    asyncio.run(main())
