"""Configuration generations: a SIGHUP reload of the file, or new routes
published by the control plane, build the next
:class:`~archipel.gateway._generations.Routing` off the event loop and swap it
in. A request keeps the generation it arrived with, and a configuration that
fails to load or validate changes nothing: the gateway goes on with the one it
has, and the problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from archipel.gateway._config import GatewayConfig, Limits
from archipel.gateway._failover import RetryBudget
from archipel.gateway._generations import Generations, next_routing
from archipel.gateway._limits import Limiter
from archipel.gateway._metrics import RequestStats
from archipel.gateway._published import Published, ignored, merge_published
from archipel.gateway._route_table import RouteTable, describe_routes
from archipel.gateway._upstream import Upstream

Clock = Callable[[], float]
#: reads and validates the configuration file again, for a hot reload
Loader = Callable[[], GatewayConfig]
#: builds the route table of a configuration (policy, catalog, upstream keys)
Builder = Callable[[GatewayConfig], RouteTable]
#: what a reload builds off the event loop: the file's config, the config to serve, its table
_Load = Callable[[], tuple[GatewayConfig, GatewayConfig, RouteTable]]

log = logging.getLogger("archipel.gateway")

#: settings that a reload cannot change: they take effect at the next start
RESTART_ONLY = (
    "listen",
    "requests",
    "event_loop",
    "metering",
    "rate_limits",
    "control_plane",
    "shutdown_timeout",
)


class Reloader:
    """Swaps the generation requests start on (see the module docstring)."""

    def __init__(
        self,
        generations: Generations,
        upstream: Upstream,
        budget: RetryBudget,
        limiter: Limiter,
        stats: RequestStats,
        clock: Clock,
        loader: Loader | None,
        builder: Builder | None,
    ) -> None:
        self.generations = generations
        self.upstream = upstream
        self.budget = budget
        self.limiter = limiter
        self.stats = stats
        self.clock = clock
        self.loader = loader
        self.builder = builder
        # routes: the file's models, plus what the control plane publishes (if configured)
        self.file_config = generations.current.config
        self.published = Published()
        self.ignored: dict[str, int] = {}  # published replicas no take rule takes, by owner
        self._ignored_ids: set[str] = set()  # those already logged
        self.reloads = {"ok": 0, "failed": 0}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    def apply(self, config: GatewayConfig, table: RouteTable) -> list[str]:
        """Serve ``config`` and ``table`` from the next request on.

        Requests already in flight finish on the generation they started with.
        Returns the changed settings that only a restart applies (see
        :data:`RESTART_ONLY`); they are left as they were.
        """
        old = self.generations.current
        pending = [
            f for f in RESTART_ONLY if _restart_only(config, f) != _restart_only(old.config, f)
        ]
        self.upstream.set_timeouts(config.timeouts)
        self.budget.configure(config.retry.budget_ratio, config.retry.budget_min_per_second)
        self.limiter.set_limits(limits_of(config), self.clock())
        self.generations.swap(next_routing(old.generation + 1, config, table, old))
        self.stats.keep_replicas({r.id for r in table.replicas})
        return pending

    async def reload(self) -> bool:
        """Read the configuration again with :attr:`loader` and apply it."""
        if self.loader is None or self.builder is None:
            raise RuntimeError("this gateway was started without a configuration loader")
        loader, builder = self.loader, self.builder

        def load() -> tuple[GatewayConfig, GatewayConfig, RouteTable]:
            file_config = loader()
            merged = merge_published(file_config, self.published)
            return file_config, merged, builder(merged)

        async with self._lock:
            pending = await self._swap(load, "reload failed")
            if pending is None:
                return False
            self._count_ignored(self.published)  # the take rules may have changed
            generation = self.generations.current.generation
            log.info("gateway: configuration reloaded (generation %d)", generation)
            if pending:
                log.warning("gateway: %s changed; restart the gateway to apply", ", ".join(pending))
            return True

    async def on_published(self, published: Published) -> None:
        """New routes from the control plane: merge them with the file's and apply."""
        assert self.builder is not None
        builder, file_config = self.builder, self.file_config

        def load() -> tuple[GatewayConfig, GatewayConfig, RouteTable]:
            merged = merge_published(file_config, published)
            return file_config, merged, builder(merged)

        async with self._lock:
            if await self._swap(load, "cannot use the routes the control plane published") is None:
                return
            self.published = published
            self._count_ignored(published)
            log.info(
                "gateway: %d replicas of %d models from the control plane (generation %d)",
                sum(len(m.replicas) for m in published.models.values()),
                len(published.models),
                self.generations.current.generation,
            )

    def on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        """Stop the reloads under way (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()

    def _count_ignored(self, published: Published) -> None:
        """Count the published replicas no ``take`` rule takes; log each one once."""
        left_out = ignored(self.file_config, published)
        self.ignored = {}
        for rid, owner in left_out:
            self.ignored[owner] = self.ignored.get(owner, 0) + 1
            if rid not in self._ignored_ids:
                log.warning(
                    "gateway: not routing to %s: a service of control-plane tenant %s, "
                    "which control_plane.take does not name",
                    rid,
                    owner,
                )
        self._ignored_ids = {rid for rid, _ in left_out}

    async def _swap(self, load: _Load, failed: str) -> list[str] | None:
        """Run ``load`` off the event loop and apply it; the settings that need a
        restart, or None if it failed (nothing changes)."""
        try:
            # parsing, policy evaluation and file reads stay off the event loop
            loop = asyncio.get_running_loop()
            file_config, config, table = await loop.run_in_executor(None, load)
        except Exception as exc:
            self.reloads["failed"] += 1
            log.error(
                "gateway: %s, still serving generation %d:\n%s",
                failed,
                self.generations.current.generation,
                exc,
            )
            return None
        self.file_config = file_config
        pending = self.apply(config, table)
        self.reloads["ok"] += 1
        for line in describe_routes(table):
            log.info("gateway: %s", line)
        return pending


def _restart_only(config: GatewayConfig, setting: str) -> Any:
    """The part of ``setting`` that only a restart applies: of ``control_plane``, all but
    ``take`` and ``key_env``, which every rebuild of the routes reads again."""
    value = getattr(config, setting)
    if setting == "control_plane" and value is not None:
        return value.model_copy(update={"take": None, "key_env": None})
    return value


def limits_of(config: GatewayConfig) -> dict[str, Limits]:
    """Each tenant's limits, by name."""
    return {name: t.limits for name, t in config.tenants.items()}
