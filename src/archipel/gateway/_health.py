"""Active health checks: every replica's ``health_path`` is fetched every
``health_checks.interval`` seconds, and a replica that fails
``unhealthy_after`` checks in a row gets no traffic until it passes
``healthy_after`` in a row (see docs/gateway.md). The checks only update each
replica's state, which the request path reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from archipel.gateway._generations import Generations, Routing
from archipel.gateway._upstream import Upstream

log = logging.getLogger("archipel.gateway")


class HealthChecks:
    """Checks the replicas of the current generation, round after round."""

    def __init__(self, generations: Generations, upstream: Upstream) -> None:
        self.generations = generations
        self.upstream = upstream

    async def run_forever(self) -> None:
        """A round of checks at start, then one every ``health_checks.interval`` seconds;
        a swap that brings new (pending) replicas has them checked at once."""
        loop = asyncio.get_running_loop()
        swapped = self.generations.swapped
        next_round = loop.time()
        while True:
            swapped.clear()  # before reading the generation: a swap during the round counts
            routing = self.generations.current  # a reload takes effect at the next round
            spec = routing.config.health_checks
            due = loop.time() >= next_round
            if spec.enabled:
                try:
                    await self.check_round(routing, only_pending=not due)
                except Exception:  # a bug here must not end the checks for good
                    log.exception("gateway: a round of health checks failed")
            if due:
                next_round = loop.time() + spec.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(swapped.wait(), max(next_round - loop.time(), 0.0))

    async def check_round(self, routing: Routing | None = None, only_pending: bool = False) -> None:
        """Check every replica (or only the pending ones) once, concurrently, and update
        their verdicts."""
        routing = routing or self.generations.current
        spec = routing.config.health_checks
        replicas = [
            r for r in routing.table.replicas if not only_pending or routing.states[r.index].pending
        ]
        if not replicas:
            return
        results = await asyncio.gather(*(self.upstream.check(r, spec.timeout) for r in replicas))
        for r, ok in zip(replicas, results, strict=True):
            state = routing.states[r.index]
            first = state.pending
            if state.checked(ok, spec.unhealthy_after, spec.healthy_after):
                if first:
                    log.info("gateway: replica %s passes its first health check", r.id)
                elif state.down:
                    log.warning(
                        "gateway: replica %s failed %d health checks in a row (GET %s%s): "
                        "no traffic until it passes",
                        r.id, spec.unhealthy_after, r.base_url, r.health_path,
                    )  # fmt: skip
                else:
                    log.warning("gateway: replica %s passes its health checks again", r.id)
            elif first:
                log.warning(
                    "gateway: replica %s fails its first health check (GET %s%s): "
                    "no traffic until it passes",
                    r.id, r.base_url, r.health_path,
                )  # fmt: skip
