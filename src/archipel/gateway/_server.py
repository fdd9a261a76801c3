"""The gateway: an OpenAI-compatible HTTP server (aiohttp for the server and the
upstream client), composed of parts with one responsibility each:

- :class:`~archipel.gateway._proxy.Proxy`, the request path: authenticate ->
  rate-limit -> read and check the body -> route -> proxy with failover -> meter;
- :class:`~archipel.gateway._limits.Limiter`, the per-tenant rate limits: in
  process, or shared through Redis (:mod:`~archipel.gateway._limits_redis`);
- :class:`~archipel.gateway._reload.Reloader`, the configuration generations:
  a **reload** (SIGHUP, :meth:`Gateway.reload`) or new routes from the control
  plane (:mod:`~archipel.gateway._published`) build the next
  :class:`~archipel.gateway._generations.Routing` off the event loop and swap it in;
  a request keeps the generation it arrived with;
- :class:`~archipel.gateway._health.HealthChecks`, the **active health checks**
  (:meth:`Gateway.check_round`), which mark replicas down and up again;
- the metrics (:mod:`~archipel.gateway._metrics`), read from this state at scrape time.

The background parts change what requests see only by swapping or updating
state the request path reads. Replicas are reached through the
:class:`~archipel.gateway._upstream.Upstream` seam (aiohttp by default, a
function-backed fake in tests). An outer middleware turns anything unexpected
into an OpenAI-format 500.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from archipel.gateway._config import GatewayConfig
from archipel.gateway._failover import ReplicaState, RetryBudget
from archipel.gateway._generations import Generations, Routing, next_routing
from archipel.gateway._health import HealthChecks
from archipel.gateway._limits import InProcessLimiter, Limiter
from archipel.gateway._limits_lease import LeasingLimiter
from archipel.gateway._limits_redis import RedisLimiter
from archipel.gateway._metering import JsonlMeter, Meter
from archipel.gateway._metrics import RequestStats, StateCollector
from archipel.gateway._peers import PeerMetrics
from archipel.gateway._proxy import ENDPOINTS, Clock, Proxy
from archipel.gateway._published import PublishedRoutes
from archipel.gateway._reload import Builder, Loader, Reloader, limits_of
from archipel.gateway._reply import last_resort
from archipel.gateway._route_table import RouteTable
from archipel.gateway._upstream import AiohttpUpstream, Upstream
from archipel.gateway._workers import WorkerSlot


class Gateway:
    """The gateway's parts and their lifecycle; :attr:`app` is the aiohttp application."""

    def __init__(
        self,
        config: GatewayConfig,
        table: RouteTable,
        meter: Meter,
        upstream: Upstream | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        loader: Loader | None = None,
        builder: Builder | None = None,
        control_plane_token: str | None = None,
        slot: WorkerSlot | None = None,
    ) -> None:
        if builder is None and (loader is not None or config.control_plane is not None):
            raise ValueError("a gateway that reloads or follows a control plane needs a builder")
        self.upstream = upstream if upstream is not None else AiohttpUpstream(config.timeouts)
        self.meter = meter
        self.clock = clock
        now = clock()
        self.generations = Generations(next_routing(1, config, table, None))
        self.budget = RetryBudget(
            config.retry.budget_ratio, config.retry.budget_min_per_second, now
        )
        share = 1 if slot is None else slot.count
        self.limiter, limit_clock = _limiter(config, clock, wall_clock, share)
        self.stats = RequestStats()
        self.reloader = Reloader(
            self.generations, self.upstream, self.budget, self.limiter, self.stats, clock,
            loader, builder,
        )  # fmt: skip
        self.publisher: PublishedRoutes | None = None
        if config.control_plane is not None:
            self.publisher = PublishedRoutes(
                config.control_plane, control_plane_token, self.reloader.on_published
            )
        self.health = HealthChecks(self.generations, self.upstream)
        self.proxy = Proxy(
            self.generations, self.upstream, meter, self.limiter, limit_clock, self.budget,
            self.stats, config.requests, clock, wall_clock,
        )  # fmt: skip
        self.registry = CollectorRegistry()
        self.registry.register(self.stats)
        self.registry.register(StateCollector(self))
        self.peers = None if slot is None or slot.count == 1 else PeerMetrics(slot, self.registry)
        self.app = self._build_app(config)

    # the current generation and its parts, for callers that do not care about reloads
    @property
    def routing(self) -> Routing:
        return self.generations.current

    @property
    def config(self) -> GatewayConfig:
        return self.generations.current.config

    @property
    def table(self) -> RouteTable:
        return self.generations.current.table

    @property
    def states(self) -> list[ReplicaState]:
        return self.generations.current.states

    @property
    def shared(self) -> RedisLimiter | None:
        """The limiter, when the limits are shared through Redis."""
        return self.limiter if isinstance(self.limiter, RedisLimiter) else None

    @property
    def loader(self) -> Loader | None:
        return self.reloader.loader

    @loader.setter
    def loader(self, loader: Loader | None) -> None:
        self.reloader.loader = loader

    @property
    def builder(self) -> Builder | None:
        return self.reloader.builder

    @property
    def reloads(self) -> dict[str, int]:
        return self.reloader.reloads

    @property
    def ignored(self) -> dict[str, int]:
        return self.reloader.ignored

    def apply(self, config: GatewayConfig, table: RouteTable) -> list[str]:
        """See :meth:`Reloader.apply`."""
        return self.reloader.apply(config, table)

    async def reload(self) -> bool:
        """Read the configuration again with :attr:`loader` and apply it.

        A configuration that fails to load or validate changes nothing: the
        gateway goes on with the one it has, and the problem is logged.
        """
        return await self.reloader.reload()

    async def check_round(self, routing: Routing | None = None) -> None:
        """Check every replica once, concurrently, and update their verdicts."""
        await self.health.check_round(routing)

    # -- application wiring -------------------------------------------------

    def _build_app(self, config: GatewayConfig) -> web.Application:
        app = web.Application(
            client_max_size=config.requests.max_body_bytes, middlewares=[last_resort]
        )
        for path in ENDPOINTS:
            app.router.add_post(path, self.proxy.handle_proxy)
        app.router.add_get("/v1/models", self.proxy.handle_models)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_health)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.upstream.start()
        await self.meter.start()
        await self.limiter.start()  # never fails: a Redis that is down means local limits
        if self.peers is not None:
            await self.peers.start()
        loop = asyncio.get_running_loop()
        checks = loop.create_task(self.health.run_forever())
        polls = None if self.publisher is None else loop.create_task(self.publisher.run())
        watching = self.loader is not None and _can_watch_signals()
        if watching:
            loop.add_signal_handler(signal.SIGHUP, self.reloader.on_sighup)
        try:
            yield
        finally:
            checks.cancel()
            if polls is not None:
                polls.cancel()
            if watching:
                loop.remove_signal_handler(signal.SIGHUP)
            self.reloader.cancel()
            # in-flight requests are done (aiohttp waited up to shutdown_timeout); the meter
            # closes last so that the records of those requests are written
            if self.peers is not None:
                await self.peers.close()
            await self.upstream.close()
            await self.limiter.close()
            await self.meter.close()

    # -- small endpoints ----------------------------------------------------

    async def handle_metrics(self, request: web.Request) -> web.StreamResponse:
        if self.peers is not None:
            return await self.peers.handle_metrics(request)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")


def _limiter(
    config: GatewayConfig, clock: Clock, wall_clock: Clock, share: int = 1
) -> tuple[Limiter, Clock]:
    """The limiter ``config.rate_limits`` asks for, and the clock its times are on.

    In-process limits are split ``share`` ways (one share per worker process), so that
    the workers together admit what one process would; shared limits need no split.
    """
    spec = config.rate_limits
    if spec.backend == "redis":
        # shared by processes that may run on different hosts: wall-clock times
        if spec.lease:
            leasing = LeasingLimiter(
                spec.redis_url, spec.prefix, limits_of(config), lease=spec.lease,
                lease_seconds=spec.lease_seconds, sync_interval=spec.sync_interval,
                timeout=spec.timeout, fallback_clock=clock, fallback_share=share,
            )  # fmt: skip
            return leasing, wall_clock
        shared = RedisLimiter(
            spec.redis_url, spec.prefix, limits_of(config), timeout=spec.timeout,
            fallback_clock=clock, fallback_share=share,
        )  # fmt: skip
        return shared, wall_clock
    return InProcessLimiter(limits_of(config), clock(), share), clock


def server_settings(config: GatewayConfig) -> dict[str, Any]:
    """The aiohttp server settings the gateway relies on: pass them to your runner
    (``web.AppRunner(app, **server_settings(config))``); :func:`serve` does.

    - ``handler_cancellation``: a client that disconnects cancels its handler, which
      closes the upstream request and frees the replica's slot at once;
    - ``keepalive_timeout`` (``requests.header_timeout``): aiohttp closes a connection
      whose next request's headers have not arrived that long after the connection
      opened or the previous answer was sent.
    """
    return {
        "handler_cancellation": True,
        "keepalive_timeout": config.requests.header_timeout,
    }


def _can_watch_signals() -> bool:
    return hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread()


def create_app(
    config: GatewayConfig,
    table: RouteTable,
    meter: Meter | None = None,
    upstream: Upstream | None = None,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    loader: Loader | None = None,
    builder: Builder | None = None,
    control_plane_token: str | None = None,
    slot: WorkerSlot | None = None,
) -> web.Application:
    """The gateway as an aiohttp application (run it with any aiohttp runner).

    ``meter`` defaults to a :class:`JsonlMeter` on ``config.metering.path``,
    ``upstream`` to an :class:`AiohttpUpstream` with ``config.timeouts``.
    With a ``loader`` (it reads the file again), SIGHUP reloads the configuration (see
    :meth:`Gateway.reload`); with ``config.control_plane``, the routes it publishes are
    merged in. Both need ``builder``, which builds the route table of a configuration
    (policy, catalog, upstream keys). Run it with :func:`server_settings`.
    """
    if meter is None:
        meter = JsonlMeter(Path(config.metering.path), config.metering.queue_size)
    gateway = Gateway(
        config, table, meter, upstream, clock, wall_clock, loader, builder, control_plane_token,
        slot,
    )  # fmt: skip
    return gateway.app


def serve(
    config: GatewayConfig,
    table: RouteTable,
    meter: Meter | None = None,
    loader: Loader | None = None,
    builder: Builder | None = None,
    control_plane_token: str | None = None,
    sock: socket.socket | None = None,
    slot: WorkerSlot | None = None,
) -> None:
    """Run the gateway until SIGINT or SIGTERM, then shut down gracefully.

    ``sock`` is a socket already listening (the caller bound it, so that it can say
    at once when the address is taken); by default ``config.listen`` is bound here.

    On a signal aiohttp stops accepting connections, waits up to
    ``config.shutdown_timeout`` seconds for in-flight requests, then the
    client session closes and queued usage records are written. With a
    ``loader``, SIGHUP reloads the configuration without dropping a request.
    """
    app = create_app(
        config,
        table,
        meter,
        loader=loader,
        builder=builder,
        control_plane_token=control_plane_token,
        slot=slot,
    )
    settle_heap()
    where: dict[str, Any] = (
        {"sock": sock}
        if sock is not None
        else {"host": config.listen.host, "port": config.listen.port}
    )
    web.run_app(
        app,
        **where,
        shutdown_timeout=config.shutdown_timeout,
        access_log=None,
        print=None,
        loop=new_event_loop(config.event_loop),
        **server_settings(config),
    )


#: the collector's first threshold while serving: net new container objects between two
#: young collections (CPython's default is 700)
YOUNG_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """Set the garbage collector up for serving, once everything is loaded.

    - Everything loaded so far (config, catalog, policy, route table, libraries) lives as
      long as the process: it is moved out of the collector's view (``gc.freeze``), so that
      the full collections the request path triggers do not walk it (this halves p99
      latency at saturation).
    - A young collection runs when the container objects allocated and not yet freed
      exceed the first threshold. With CPython's 700, the requests in flight alone (a few
      dozen objects each, freed by reference counting when the request ends) cross it every
      few dozen requests at c=32, and every collection walks them, for nothing: they are
      not garbage yet. At :data:`YOUNG_GC_THRESHOLD` it runs only when that many objects
      are left over, which is when reference cycles pile up; that bounds the garbage the
      collector leaves to a few megabytes. Measured at c=32 (JSON then streams): 1,712
      young collections in 42,000 requests, 3.4 % of the gateway's CPU, with 700; none in
      31,000 requests with 10,000.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """An event loop: ``uvloop``, ``asyncio``, or ``auto`` (uvloop when it is installed).

    uvloop is optional; ``uvloop`` without it installed is an error.
    """
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:  # pragma: no cover - depends on the environment
        if kind == "uvloop":
            raise
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
