"""The OpenAI-compatible HTTP server (aiohttp for the server and the upstream client).

One handler per request runs the steps in this order, each a small method:
authenticate (the key's SHA-256 -> tenant) -> rate-limit (cheap, before any
parsing) -> read the body (bounded in size and time) and check the fields the
gateway reads (:mod:`~archipel.gateway._request`) -> route (the tenant's data
class table, built at load) -> proxy with failover -> meter. An outer
middleware turns anything unexpected into an OpenAI-format 500.

A client that disconnects cancels its handler (aiohttp's ``handler_cancellation``,
see :func:`server_settings`): the upstream request is closed, its replica slot
freed at once, and the request metered with status 499 (client closed request).

Replicas are reached through the :class:`~archipel.gateway._upstream.Upstream`
seam (aiohttp by default, a function-backed fake in tests).

Failover happens only while nothing has been sent to the client: a
non-streaming body is read completely before answering, and a stream is
answered only once its first chunk has arrived. After that, a failure ends the
stream with an error event.

Beside the request path, three background activities change what requests
see, each by swapping or updating state the request path only reads:

- a **reload** (SIGHUP, :meth:`Gateway.reload`) or new routes from the control
  plane (:mod:`~archipel.gateway._published`) build the next
  :class:`~archipel.gateway._routing.Routing` off the event loop and swap it in;
  a request keeps the generation it arrived with;
- **active health checks** (:meth:`Gateway.check_round`) mark replicas down
  and up again;
- token charges of **shared rate limits** go to Redis after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import logging
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from archipel.gateway import _json
from archipel.gateway._config import GatewayConfig, Limits, Requests, hash_key
from archipel.gateway._errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from archipel.gateway._failover import (
    Refusal,
    ReplicaState,
    RetryBudget,
    pick,
    retryable_status,
)
from archipel.gateway._limits_redis import RedisLimiter
from archipel.gateway._metering import JsonlMeter, Meter, UsageRecord
from archipel.gateway._metrics import RequestStats, StateCollector
from archipel.gateway._published import Published, PublishedRoutes, ignored, merge_published
from archipel.gateway._request import check_body
from archipel.gateway._routes import ModelRoute, Replica, RouteTable, describe_routes
from archipel.gateway._routing import Routing, TenantState, next_routing
from archipel.gateway._upstream import AiohttpUpstream, Upstream, UpstreamResponse
from archipel.gateway._usage import (
    count_events,
    estimate_input_tokens,
    estimate_output_tokens,
    stream_usage,
    usage_of,
)

Clock = Callable[[], float]
#: reads and validates the configuration file again, for a hot reload
Loader = Callable[[], GatewayConfig]
#: builds the route table of a configuration (policy, catalog, upstream keys)
Builder = Callable[[GatewayConfig], RouteTable]

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

#: the OpenAI endpoints proxied, client path -> path under the replica's base URL
ENDPOINTS = {
    "/v1/chat/completions": "/chat/completions",
    "/v1/completions": "/completions",
    "/v1/embeddings": "/embeddings",
}
#: the status metered for a request whose client went away before its answer
#: (nginx's "client closed request"; no client ever receives it)
CLIENT_CLOSED = 499
_JSON = "application/json"
_SSE = "text/event-stream"
_AUTH_STATUSES = frozenset({401, 403})  # the replica refused *our* key: try another one


class Reply(Exception):  # noqa: N818 - control flow, not an error
    """Answer the client with an OpenAI-format error now."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        code: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.headers = headers or {}
        self.param = param
        self.close = close  # the connection cannot be reused (a body left unread)

    def response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        out = web.json_response(body, status=self.status, headers=self.headers)
        if self.close:
            out.force_close()
        return out


@dataclass(slots=True)
class _Call:
    """Per-request state: what the proxy learned, for metering."""

    request_id: str
    tenant: TenantState
    routing: Routing
    model: str
    body: bytes  # forwarded as received unless the replica renames the model
    doc: dict[str, Any]
    stream: bool
    started: float
    attempts: int = 0
    replica: Replica | None = None
    usage: tuple[int, int] | None = None
    output_estimate: int = 0
    status: int = 0
    broken: bool = False
    tried: list[Replica] = field(default_factory=list)


def _error_status(exc: UpstreamError, replica: Replica) -> Reply:
    """The answer after the last failed attempt; names the replica, never its address."""
    if isinstance(exc, UpstreamTimeoutError):
        return Reply(504, f"upstream {exc.phase} timeout", "server_error", "upstream_timeout")
    if isinstance(exc, UpstreamStatusError) and exc.status == 429:
        after = str(max(1, round(exc.retry_after or 1)))
        return Reply(
            429,
            "every replica is rate-limited upstream",
            "rate_limit_error",
            "rate_limit_exceeded",
            {"Retry-After": after},
        )
    return Reply(
        502, f"upstream failed: {replica.id}: {exc.public}", "server_error", "upstream_error"
    )


def _retry_after(resp: UpstreamResponse) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


class Gateway:
    """The gateway's state and handlers; :attr:`app` is the aiohttp application."""

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
    ) -> None:
        self.upstream = upstream if upstream is not None else AiohttpUpstream(config.timeouts)
        self.meter = meter
        self.clock = clock
        self.wall_clock = wall_clock
        self.loader = loader
        self.builder = builder
        # routes: the file's models, plus what the control plane publishes (if configured)
        self._file_config = config
        self._published = Published()
        self.ignored: dict[str, int] = {}  # published replicas no take rule takes, by owner
        self._ignored_ids: set[str] = set()  # those already logged
        self.publisher: PublishedRoutes | None = None
        if builder is None and (loader is not None or config.control_plane is not None):
            raise ValueError("a gateway that reloads or follows a control plane needs a builder")
        if config.control_plane is not None:
            self.publisher = PublishedRoutes(
                config.control_plane, control_plane_token, self._on_published
            )
        now = clock()
        self.budget = RetryBudget(
            config.retry.budget_ratio, config.retry.budget_min_per_second, now
        )
        self.routing = next_routing(1, config, table, None, now)
        self.requests: Requests = config.requests  # restart-only: the server is built with it
        # shared limits (Redis) replace the per-tenant in-process buckets when configured
        self.shared: RedisLimiter | None = None
        if config.rate_limits.backend == "redis":
            self.shared = RedisLimiter(
                config.rate_limits.redis_url,
                config.rate_limits.prefix,
                _limits_of(config),
                timeout=config.rate_limits.timeout,
                fallback_clock=clock,
            )
        self._charges: set[asyncio.Task[None]] = set()  # token charges on their way to Redis
        self.reloads = {"ok": 0, "failed": 0}
        self._reload_lock = asyncio.Lock()
        self._reload_tasks: set[asyncio.Task[bool]] = set()
        self._ids = itertools.count(1)
        self._boot = f"{int(wall_clock()):x}"
        # response headers per (content type, replica): built once, shared by every answer
        self._headers: dict[tuple[str, str], dict[str, str]] = {}
        self.stats = RequestStats()
        self.registry = CollectorRegistry()
        self.registry.register(self.stats)
        self.registry.register(StateCollector(self))
        self.app = self._build_app()

    # the current generation's parts, for callers that do not care about reloads
    @property
    def config(self) -> GatewayConfig:
        return self.routing.config

    @property
    def table(self) -> RouteTable:
        return self.routing.table

    @property
    def states(self) -> list[ReplicaState]:
        return self.routing.states

    # -- hot reload ---------------------------------------------------------

    def apply(self, config: GatewayConfig, table: RouteTable) -> list[str]:
        """Serve ``config`` and ``table`` from the next request on.

        Requests already in flight finish on the generation they started with.
        Returns the changed settings that only a restart applies (see
        :data:`RESTART_ONLY`); they are left as they were.
        """
        old = self.routing
        pending = [
            f for f in RESTART_ONLY if _restart_only(config, f) != _restart_only(old.config, f)
        ]
        self.upstream.set_timeouts(config.timeouts)
        self.budget.configure(config.retry.budget_ratio, config.retry.budget_min_per_second)
        if self.shared is not None:
            self.shared.set_limits(_limits_of(config))
        self.routing = next_routing(old.generation + 1, config, table, old, self.clock())
        self.stats.keep_replicas({r.id for r in table.replicas})
        return pending

    async def reload(self) -> bool:
        """Read the configuration again with :attr:`loader` and apply it.

        A configuration that fails to load or validate changes nothing: the
        gateway goes on with the one it has, and the problem is logged.
        """
        if self.loader is None or self.builder is None:
            raise RuntimeError("this gateway was started without a configuration loader")
        loader, builder = self.loader, self.builder

        def load() -> tuple[GatewayConfig, GatewayConfig, RouteTable]:
            file_config = loader()
            merged = merge_published(file_config, self._published)
            return file_config, merged, builder(merged)

        async with self._reload_lock:
            pending = await self._swap(load, "reload failed")
            if pending is None:
                return False
            self._count_ignored(self._published)  # the take rules may have changed
            log.info("gateway: configuration reloaded (generation %d)", self.routing.generation)
            if pending:
                log.warning("gateway: %s changed; restart the gateway to apply", ", ".join(pending))
            return True

    async def _on_published(self, published: Published) -> None:
        """New routes from the control plane: merge them with the file's and apply."""
        assert self.builder is not None
        builder, file_config = self.builder, self._file_config

        def load() -> tuple[GatewayConfig, GatewayConfig, RouteTable]:
            merged = merge_published(file_config, published)
            return file_config, merged, builder(merged)

        async with self._reload_lock:
            if await self._swap(load, "cannot use the routes the control plane published") is None:
                return
            self._published = published
            self._count_ignored(published)
            log.info(
                "gateway: %d replicas of %d models from the control plane (generation %d)",
                sum(len(m.replicas) for m in published.models.values()),
                len(published.models),
                self.routing.generation,
            )

    def _count_ignored(self, published: Published) -> None:
        """Count the published replicas no ``take`` rule takes; log each one once."""
        left_out = ignored(self._file_config, published)
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

    async def _swap(
        self, load: Callable[[], tuple[GatewayConfig, GatewayConfig, RouteTable]], failed: str
    ) -> list[str] | None:
        """Run ``load`` (file config, config to serve, its table) off the event loop and
        apply it; the settings that need a restart, or None if it failed (nothing changes)."""
        try:
            # parsing, policy evaluation and file reads stay off the event loop
            loop = asyncio.get_running_loop()
            file_config, config, table = await loop.run_in_executor(None, load)
        except Exception as exc:
            self.reloads["failed"] += 1
            log.error(
                "gateway: %s, still serving generation %d:\n%s",
                failed,
                self.routing.generation,
                exc,
            )
            return None
        self._file_config = file_config
        pending = self.apply(config, table)
        self.reloads["ok"] += 1
        for line in describe_routes(table):
            log.info("gateway: %s", line)
        return pending

    # -- active health checks ----------------------------------------------

    async def _check_forever(self) -> None:
        """A round of checks at start, then one every ``health_checks.interval`` seconds."""
        while True:
            routing = self.routing  # a reload takes effect at the next round
            spec = routing.config.health_checks
            if spec.enabled:
                try:
                    await self.check_round(routing)
                except Exception:  # a bug here must not end the checks for good
                    log.exception("gateway: a round of health checks failed")
            await asyncio.sleep(spec.interval)

    async def check_round(self, routing: Routing | None = None) -> None:
        """Check every replica once, concurrently, and update their verdicts."""
        routing = routing or self.routing
        spec = routing.config.health_checks
        replicas = routing.table.replicas
        results = await asyncio.gather(*(self.upstream.check(r, spec.timeout) for r in replicas))
        for r, ok in zip(replicas, results, strict=True):
            state = routing.states[r.index]
            if state.checked(ok, spec.unhealthy_after, spec.healthy_after):
                if state.down:
                    log.warning(
                        "gateway: replica %s failed %d health checks in a row (GET %s%s): "
                        "no traffic until it passes",
                        r.id, spec.unhealthy_after, r.base_url, r.health_path,
                    )  # fmt: skip
                else:
                    log.warning("gateway: replica %s passes its health checks again", r.id)

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)

    # -- application wiring -------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.requests.max_body_bytes, middlewares=[_last_resort]
        )
        for path in ENDPOINTS:
            app.router.add_post(path, self.handle_proxy)
        app.router.add_get("/v1/models", self.handle_models)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_health)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.upstream.start()
        await self.meter.start()
        if self.shared is not None:
            await self.shared.start()  # never fails: a Redis that is down means local limits
        loop = asyncio.get_running_loop()
        checks = loop.create_task(self._check_forever())
        polls = None if self.publisher is None else loop.create_task(self.publisher.run())
        watching = self.loader is not None and _can_watch_signals()
        if watching:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            yield
        finally:
            checks.cancel()
            if polls is not None:
                polls.cancel()
            if watching:
                loop.remove_signal_handler(signal.SIGHUP)
            for task in list(self._reload_tasks):
                task.cancel()
            # in-flight requests are done (aiohttp waited up to shutdown_timeout); the meter
            # closes last so that the records of those requests are written
            await self.upstream.close()
            if self._charges:
                await asyncio.wait(
                    list(self._charges), timeout=self.routing.config.rate_limits.timeout
                )
            if self.shared is not None:
                await self.shared.close()
            await self.meter.close()

    # -- small endpoints ----------------------------------------------------

    async def handle_models(self, request: web.Request) -> web.StreamResponse:
        try:
            tenant = self._authenticate(request, self.routing)
        except Reply as reply:
            return reply.response()
        return web.Response(body=tenant.models_body, content_type=_JSON)

    async def handle_metrics(self, request: web.Request) -> web.StreamResponse:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    # -- the proxy path -----------------------------------------------------

    @staticmethod
    def _authenticate(request: web.Request, routing: Routing) -> TenantState:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            tenant = routing.tenants.get(hash_key(header[7:].strip()))
            if tenant is not None:
                return tenant
        raise Reply(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    @staticmethod
    def _admit(wait: float, tenant: TenantState) -> None:
        if wait > 0:
            after = {"Retry-After": str(max(1, round(wait + 0.5)))}
            message = f"rate limit reached for tenant {tenant.name}"
            raise Reply(429, message, "rate_limit_error", "rate_limit_exceeded", after)

    async def _read(self, request: web.Request) -> bytes:
        """The body, within ``requests.max_body_bytes`` and ``requests.body_timeout``."""
        limit = self.requests.max_body_bytes
        length = request.content_length
        try:
            if length is not None and length > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
            if request.content.is_eof():  # it arrived with the headers: nothing to time
                return await request.read()
            async with asyncio.timeout(self.requests.body_timeout):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            message = f"The request body is larger than {limit} bytes (requests.max_body_bytes)."
            raise Reply(
                413, message, "invalid_request_error", "request_too_large", close=True
            ) from None
        except TimeoutError:
            after = self.requests.body_timeout
            message = f"The request body did not arrive within {after:g} s (requests.body_timeout)."
            raise Reply(
                408, message, "invalid_request_error", "request_timeout", close=True
            ) from None

    async def _parse(self, request: web.Request, suffix: str) -> tuple[bytes, dict[str, Any]]:
        body = await self._read(request)
        try:
            doc = _json.loads(body)
        except (ValueError, RecursionError) as exc:
            detail = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise Reply(
                400,
                f"We could not parse the JSON body of your request: {detail}",
                "invalid_request_error",
                "invalid_json",
            ) from None
        problem = check_body(suffix, doc)
        if problem is not None:
            raise Reply(
                400, problem.message, "invalid_request_error", problem.code, param=problem.param
            )
        return body, doc

    @staticmethod
    def _route(routing: Routing, tenant: TenantState, model: str) -> ModelRoute:
        route = tenant.routes.get(model)  # only what this tenant may use: its class, its owners
        if route is not None and route.replicas:
            return route
        if model in routing.table.models:
            message = f"The model `{model}` is not available to data class `{tenant.data_class}`."
        else:
            message = f"The model `{model}` does not exist or you do not have access to it."
        raise Reply(404, message, "invalid_request_error", "model_not_found")

    async def handle_proxy(self, request: web.Request) -> web.StreamResponse:
        started = self.clock()
        routing = self.routing  # this request's generation, whatever a reload does meanwhile
        call: _Call | None = None
        try:
            tenant = self._authenticate(request, routing)
            if self.shared is None:
                self._admit(tenant.limiter.admit(self.clock()), tenant)
            else:
                self._admit(await self.shared.admit(tenant.name, self.wall_clock()), tenant)
            suffix = ENDPOINTS[request.path]
            body, doc = await self._parse(request, suffix)
            route = self._route(routing, tenant, doc["model"])
            call = _Call(
                f"{self._boot}-{next(self._ids)}",
                tenant,
                routing,
                doc["model"],
                body,
                doc,
                doc.get("stream") is True,
                started,
            )
            response = await self._proxy(request, call, route, suffix)
        except Reply as reply:
            response = reply.response()
            if call is not None:
                call.status = reply.status
        except asyncio.CancelledError:
            # the client went away (or the server stops): the attempt's slot is already
            # free; meter what the client got, if anything
            if call is not None:
                if not call.status:
                    call.status = CLIENT_CLOSED
                self._finish(call)
            raise
        if call is not None:
            self._finish(call)
        return response

    async def _proxy(
        self, request: web.Request, call: _Call, route: ModelRoute, suffix: str
    ) -> web.StreamResponse:
        self.budget.on_request()
        last: UpstreamError | None = None
        for attempt in range(call.routing.config.retry.max_attempts):
            now = self.clock()
            if attempt and not self.budget.try_spend(now):
                break
            choice = pick(route, call.routing.states, now, call.tried)
            if isinstance(choice, Refusal):
                if last is None:
                    raise self._refusal(choice)
                break
            call.tried.append(choice)
            call.attempts += 1
            try:
                return await self._attempt(request, call, choice, suffix)
            except UpstreamError as exc:
                last = exc
        assert last is not None  # the loop ran at least once: max_attempts >= 1
        raise _error_status(last, call.tried[-1])

    def _refusal(self, refusal: Refusal) -> Reply:
        if refusal is Refusal.FULL:
            after = str(self.routing.config.shedding.retry_after)
            return Reply(
                429,
                "every replica is at capacity; retry shortly",
                "rate_limit_error",
                "capacity_exceeded",
                {"Retry-After": after},
            )
        return Reply(503, "no healthy replica for this model", "server_error", "no_healthy_replica")

    async def _attempt(
        self, request: web.Request, call: _Call, replica: Replica, suffix: str
    ) -> web.StreamResponse:
        """One attempt at one replica; raises :class:`UpstreamError` only before any byte."""
        state = call.routing.states[replica.index]
        state.outstanding += 1
        state.breaker.on_attempt()
        t0 = self.clock()
        try:
            resp = await self._send(call, replica, suffix)
            try:
                if call.stream and resp.status == 200:
                    out = await self._relay_stream(request, call, resp)
                else:
                    out = await self._relay_body(call, resp)
            finally:
                resp.release()
        except UpstreamError as exc:
            # the detail (hosts, ports, the client library's words) is for the log only
            log.warning(
                "gateway: request %s: replica %s failed: %s", call.request_id, replica.id, exc
            )
            now = self.clock()
            state.breaker.on_failure(now)
            if isinstance(exc, UpstreamTimeoutError):
                # a timeout is a latency sample too (at least this long): a replica that hangs
                # must look slow to the balancer, not merely fail its breaker's count
                state.observe(now - t0, now, call.routing.config.balancing.ewma_decay)
            self.stats.attempt(replica.id, replica.provider, "failed")
            raise
        except BaseException:
            # cancelled (shutdown) or the client vanished: no verdict on the replica, but a
            # half-open probe must not hold the replica's only slot forever
            state.breaker.on_abandon()
            raise
        finally:
            state.outstanding -= 1
        now = self.clock()
        if call.broken:
            state.breaker.on_failure(now)
        else:
            state.breaker.on_success(now)
        state.observe(now - t0, now, call.routing.config.balancing.ewma_decay)
        self.stats.attempt(replica.id, replica.provider, "ok")
        call.replica = replica
        call.status = out.status
        return out

    async def _send(self, call: _Call, replica: Replica, suffix: str) -> UpstreamResponse:
        body = call.body
        if replica.upstream_model is not None:
            try:
                body = _json.dumps({**call.doc, "model": replica.upstream_model})
            except (TypeError, ValueError, RecursionError):  # orjson stops at 254 levels
                raise Reply(
                    400,
                    "The body nests arrays or objects too deeply to be forwarded.",
                    "invalid_request_error",
                    "invalid_request_body",
                ) from None
        resp = await self.upstream.send(replica, suffix, body)
        if retryable_status(resp.status) or resp.status in _AUTH_STATUSES:
            retry_after = _retry_after(resp)
            resp.release()
            raise UpstreamStatusError(resp.status, retry_after)
        return resp

    async def _relay_body(self, call: _Call, resp: UpstreamResponse) -> web.Response:
        body = await resp.read()
        if resp.status == 200:
            try:
                answer = _json.loads(body)
            except (ValueError, RecursionError):
                answer = None
            call.usage = usage_of(answer)
            if call.usage is None:
                call.output_estimate = estimate_output_tokens(answer)
        content_type = resp.headers.get("Content-Type", _JSON)
        return web.Response(
            body=body, status=resp.status, headers=self._answer_headers(content_type, call)
        )

    def _answer_headers(self, content_type: str, call: _Call) -> dict[str, str]:
        key = (content_type, _replica_header(call))
        headers = self._headers.get(key)
        if headers is None:
            headers = {"Content-Type": content_type, "X-Archipel-Replica": key[1]}
            if content_type == _SSE:
                headers["Cache-Control"] = "no-cache"
            if len(self._headers) < 1024:  # bounded: content types come from upstreams
                self._headers[key] = headers
        return headers

    async def _relay_stream(
        self, request: web.Request, call: _Call, resp: UpstreamResponse
    ) -> web.StreamResponse:
        first = await resp.chunk()
        if not first:
            ended = "the stream ended before its first chunk"
            raise UpstreamConnectError(ended, ended)
        out = web.StreamResponse(status=200, headers=self._answer_headers(_SSE, call))
        await out.prepare(request)
        # from here on bytes have reached the client: no more failover, and the request is
        # metered as answered even if the client goes away (its handler is cancelled)
        call.replica, call.status = call.tried[-1], 200
        events, prev, chunk = count_events(first), b"", first
        try:
            await out.write(first)  # waits for the client to drain: backpressure
            while True:
                prev, chunk = chunk, await resp.chunk()
                if not chunk:
                    break
                events += count_events(chunk)
                await out.write(chunk)
        except UpstreamError as exc:
            call.broken = True  # the replica failed mid-stream: counts against its circuit
            log.warning(
                "gateway: request %s: replica %s failed mid-stream: %s",
                call.request_id, call.replica.id, exc,
            )  # fmt: skip
            await _write_quietly(out, _sse_error(f"{call.replica.id}: {exc.public}"))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away: stop reading, meter what was sent
        finally:
            call.usage = stream_usage(prev + chunk)
            call.output_estimate = events
        await _write_eof_quietly(out)
        return out

    # -- metering -----------------------------------------------------------

    def _finish(self, call: _Call) -> None:
        now = self.clock()
        latency = now - call.started
        tenant = call.tenant
        if call.usage is not None:
            tokens_in, tokens_out, counted = call.usage[0], call.usage[1], False
        elif call.replica is not None and 200 <= call.status < 300:
            tokens_in, tokens_out = estimate_input_tokens(call.doc), call.output_estimate
            counted = True
        else:
            # refused or failed, and the upstream reported no usage: nothing to bill or charge
            tokens_in, tokens_out, counted = 0, 0, False
        r = call.replica
        cost = r.cost(tokens_in, tokens_out) if r is not None else Decimal(0)
        if tokens_in or tokens_out:
            if self.shared is None:
                tenant.limiter.charge_tokens(tokens_in + tokens_out, now)
            else:
                self._charge_shared(tenant.name, tokens_in + tokens_out)
        self.stats.request(tenant.name, call.model, call.status, latency)
        self.meter.submit(
            UsageRecord(
                ts=self.wall_clock(),
                request_id=call.request_id,
                tenant=tenant.name,
                data_class=tenant.data_class,
                model=call.model,
                status=call.status,
                replica=None if r is None else r.id,
                provider=None if r is None else r.provider,
                region=None if r is None else r.region,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                tokens_counted=counted,
                latency_ms=round(latency * 1000, 3),
                attempts=call.attempts,
                cost=cost,
                currency="" if r is None else r.currency,
                stream=call.stream,
            )
        )

    def _charge_shared(self, tenant: str, tokens: int) -> None:
        """Charge tokens in Redis after the answer, off the request's path."""
        assert self.shared is not None
        task = asyncio.get_running_loop().create_task(
            self.shared.charge_tokens(tenant, tokens, self.wall_clock())
        )
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)


def _restart_only(config: GatewayConfig, setting: str) -> Any:
    """The part of ``setting`` that only a restart applies: of ``control_plane``, all but
    ``take`` and ``key_env``, which every rebuild of the routes reads again."""
    value = getattr(config, setting)
    if setting == "control_plane" and value is not None:
        return value.model_copy(update={"take": None, "key_env": None})
    return value


def _limits_of(config: GatewayConfig) -> dict[str, Limits]:
    return {name: t.limits for name, t in config.tenants.items()}


def _replica_header(call: _Call) -> str:
    return call.tried[-1].id


def _sse_error(message: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "code": "upstream_error"}}
    return b"data: " + _json.dumps(body) + b"\n\n"


async def _write_quietly(out: web.StreamResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
        await out.write(data)


async def _write_eof_quietly(out: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
        await out.write_eof()


@web.middleware
async def _last_resort(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Outermost layer: anything unexpected becomes an OpenAI-format error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        code = "not_found" if exc.status == 404 else "http_error"
        return Reply(exc.status, exc.reason, kind, code).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        request.app.logger.exception("gateway: unhandled error")
        return Reply(500, "internal gateway error", "server_error", "internal_error").response()


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
        config, table, meter, upstream, clock, wall_clock, loader, builder, control_plane_token
    )
    return gateway.app


def serve(
    config: GatewayConfig,
    table: RouteTable,
    meter: Meter | None = None,
    loader: Loader | None = None,
    builder: Builder | None = None,
    control_plane_token: str | None = None,
    sock: socket.socket | None = None,
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
    )
    # everything loaded so far (config, catalog, policy, route table, libraries) lives as long
    # as the process: move it out of the collector's view, so that the full collections the
    # request path triggers do not walk it (this halves p99 latency at saturation)
    gc.collect()
    gc.freeze()
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
