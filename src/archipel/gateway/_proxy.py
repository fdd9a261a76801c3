"""The request path: authenticate (the key's SHA-256 -> tenant) -> rate-limit
(cheap, before any parsing) -> read the body (bounded in size and time) and
check the fields the gateway reads (:mod:`~archipel.gateway._request`) -> route
(the tenant's data class table, built at load) -> proxy with failover -> meter.

A client that disconnects cancels its handler (aiohttp's ``handler_cancellation``,
see :func:`~archipel.gateway._server.server_settings`): the upstream request is
closed, its replica slot freed at once, and the request metered with status 499
(client closed request).

Failover happens only while nothing has been sent to the client: a
non-streaming body is read completely before answering, and a stream is
answered only once its first chunk has arrived. After that, a failure ends the
stream with an error event.

A request reads the current generation once, when it arrives, and keeps it to
the end; everything else it touches (replica states, limiter, retry budget,
counters) is updated in place, without an await of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from archipel.gateway import _json
from archipel.gateway._config import Requests, hash_key
from archipel.gateway._errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from archipel.gateway._failover import Refusal, RetryBudget, pick, retryable_status
from archipel.gateway._generations import Generations, Routing, TenantState
from archipel.gateway._limits import Limiter
from archipel.gateway._metering import Meter, UsageRecord
from archipel.gateway._metrics import RequestStats
from archipel.gateway._reply import Reply
from archipel.gateway._request import read_body
from archipel.gateway._route_table import ModelRoute, Replica
from archipel.gateway._upstream import Upstream, UpstreamResponse
from archipel.gateway._usage import (
    count_events,
    estimate_input_tokens,
    estimate_output_tokens,
    stream_usage,
    usage_of,
)

Clock = Callable[[], float]

log = logging.getLogger("archipel.gateway")

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


class Proxy:
    """The handlers of the proxied endpoints and ``/v1/models``."""

    def __init__(
        self,
        generations: Generations,
        upstream: Upstream,
        meter: Meter,
        limiter: Limiter,
        limit_clock: Clock,
        budget: RetryBudget,
        stats: RequestStats,
        requests: Requests,
        clock: Clock,
        wall_clock: Clock,
    ) -> None:
        self.generations = generations
        self.upstream = upstream
        self.meter = meter
        self.limiter = limiter
        self.limit_clock = limit_clock  # the clock the limiter's times are on
        self.budget = budget
        self.stats = stats
        self.requests = requests  # restart-only: the server is built with it
        self.clock = clock
        self.wall_clock = wall_clock
        self._ids = itertools.count(1)
        self._boot = f"{int(wall_clock()):x}"
        # response headers per (content type, replica): built once, shared by every answer
        self._headers: dict[tuple[str, str], dict[str, str]] = {}

    async def handle_models(self, request: web.Request) -> web.StreamResponse:
        try:
            tenant = authenticate(request, self.generations.current)
        except Reply as reply:
            return reply.response()
        return web.Response(body=tenant.models_body, content_type=_JSON)

    @staticmethod
    def _admit(wait: float, tenant: TenantState) -> None:
        if wait > 0:
            after = {"Retry-After": str(max(1, round(wait + 0.5)))}
            message = f"rate limit reached for tenant {tenant.name}"
            raise Reply(429, message, "rate_limit_error", "rate_limit_exceeded", after)

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
        routing = self.generations.current  # this request's generation, whatever a reload does
        call: _Call | None = None
        try:
            tenant = authenticate(request, routing)
            self._admit(await self.limiter.admit(tenant.name, self.limit_clock()), tenant)
            suffix = ENDPOINTS[request.path]
            body, doc = await read_body(request, suffix, self.requests)
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
            after = str(self.generations.current.config.shedding.retry_after)
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
            self.limiter.charge_tokens(tenant.name, tokens_in + tokens_out, self.limit_clock())
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


def authenticate(request: web.Request, routing: Routing) -> TenantState:
    """The tenant whose key the request bears, or a 401."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        tenant = routing.tenants.get(hash_key(header[7:].strip()))
        if tenant is not None:
            return tenant
    raise Reply(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
