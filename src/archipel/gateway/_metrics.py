"""Prometheus metrics read from the gateway's state at scrape time.

Outstanding requests, latency averages and circuit states change on every
request; reading them when Prometheus scrapes costs the hot path nothing. The
request counters and the latency histogram are plain ints bumped by the
request path (:class:`RequestStats`), turned into metric families on scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from archipel.gateway._failover import BreakerState
from archipel.gateway._generations import Routing
from archipel.gateway._limits_redis import RedisLimiter
from archipel.gateway._metering import Meter
from archipel.gateway._published import PublishedRoutes

_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class GatewayState(Protocol):
    """What the metrics read from the gateway at scrape time."""

    @property
    def routing(self) -> Routing: ...
    @property
    def meter(self) -> Meter: ...
    @property
    def reloads(self) -> dict[str, int]: ...
    @property
    def shared(self) -> RedisLimiter | None: ...
    @property
    def publisher(self) -> PublishedRoutes | None: ...
    @property
    def ignored(self) -> dict[str, int]: ...


class StateCollector(Collector):
    """Per-replica gauges of the current generation, and the gateway's own health:
    dropped usage records, configuration reloads, shared rate limits, published routes."""

    def __init__(self, gateway: GatewayState) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        routing = gw.routing
        yield from _replica_families(routing)
        yield from _config_families(gw, routing)
        if gw.shared is not None:
            yield from _limit_families(gw.shared)
        if gw.publisher is not None:
            yield from _control_plane_families(gw.publisher, gw.ignored)


def _replica_families(routing: Routing) -> Iterator[Metric]:
    """Per replica: in flight, latency average, circuit, health-check verdict."""
    labels = ["replica", "provider", "region"]
    outstanding = GaugeMetricFamily(
        "archipel_gateway_outstanding", "Requests in flight per replica.", labels=labels
    )
    ewma = GaugeMetricFamily(
        "archipel_gateway_latency_ewma_seconds", "Latency average per replica.", labels=labels
    )
    circuit = GaugeMetricFamily(
        "archipel_gateway_circuit_state",
        "Circuit per replica: 0 closed, 1 half-open, 2 open.",
        labels=labels,
    )
    up = GaugeMetricFamily(
        "archipel_gateway_replica_up",
        "1 while the replica passes its active health checks, else 0.",
        labels=labels,
    )
    for r, st in zip(routing.table.replicas, routing.states, strict=True):
        values = [r.id, r.provider, r.region]
        outstanding.add_metric(values, st.outstanding)
        ewma.add_metric(values, st.ewma)
        circuit.add_metric(values, _STATE_VALUE[st.breaker.state])
        up.add_metric(values, 0 if st.down else 1)
    yield outstanding
    yield ewma
    yield circuit
    yield up


def _config_families(gw: GatewayState, routing: Routing) -> Iterator[Metric]:
    """Dropped usage records, the configuration's generation and reloads."""
    dropped = getattr(gw.meter, "dropped", None)
    if isinstance(dropped, int):
        yield _one(
            GaugeMetricFamily,
            "archipel_gateway_meter_dropped",
            "Usage records dropped: queue full.",
            dropped,
        )
    yield _one(
        GaugeMetricFamily,
        "archipel_gateway_config_generation",
        "Configurations loaded: 1 at start, +1 a reload.",
        routing.generation,
    )
    yield _by(
        CounterMetricFamily,
        "archipel_gateway_config_reloads",
        "Configuration reloads, by result.",
        "result",
        gw.reloads,
    )


def _limit_families(shared: RedisLimiter) -> Iterator[Metric]:
    """How the shared rate limits fare."""
    yield _one(
        CounterMetricFamily,
        "archipel_gateway_rate_limit_fallbacks",
        "Rate-limit decisions taken in process because Redis failed.",
        shared.fallbacks,
    )
    yield _one(
        GaugeMetricFamily,
        "archipel_gateway_rate_limit_degraded",
        "1 while Redis is failing and each process enforces limits alone.",
        int(shared.degraded),
    )


def _control_plane_families(
    publisher: PublishedRoutes, ignored: dict[str, int]
) -> Iterator[Metric]:
    """The control plane's published routes: reachable, polls, replicas left out."""
    yield _one(
        GaugeMetricFamily,
        "archipel_gateway_control_plane_up",
        "1 if the last poll of the control plane's routes got an answer.",
        int(publisher.up),
    )
    yield _by(
        CounterMetricFamily,
        "archipel_gateway_control_plane_polls",
        "Polls of the control plane's routes, by result.",
        "result",
        publisher.polls,
    )
    yield _by(
        GaugeMetricFamily,
        "archipel_gateway_control_plane_ignored_replicas",
        "Published replicas not routed to: no control_plane.take rule names their owner.",
        "owner",
        ignored,
    )


_Family = type[GaugeMetricFamily] | type[CounterMetricFamily]


def _one(kind: _Family, name: str, documentation: str, value: int) -> Metric:
    """A metric family of one unlabelled value."""
    family = kind(name, documentation)
    family.add_metric([], value)
    return family


def _by(
    kind: _Family, name: str, documentation: str, label: str, counts: Mapping[str, int]
) -> Metric:
    """A metric family of one value per ``label``, in label order."""
    family = kind(name, documentation, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([key], n)
    return family


#: the request latency histogram's upper bounds, in seconds (Prometheus's defaults)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


_BUCKET_LABELS = (*(repr(b) for b in LATENCY_BUCKETS), "+Inf")  # "0.005" ... "10.0", "+Inf"


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class RequestStats(Collector):
    """Request and attempt counters and the latency histogram, as plain ints.

    The request path only bumps dict entries (no locks, no label lookups through
    ``prometheus_client``); the families are built when Prometheus scrapes.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}  # (tenant, model, status)
        self.attempts: dict[tuple[str, str, str], int] = {}  # (replica, provider, outcome)
        self.latency: dict[str, _Histogram] = {}  # model -> histogram

    def request(self, tenant: str, model: str, status: int, seconds: float) -> None:
        key = (tenant, model, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(model)
        if hist is None:
            hist = self.latency[model] = _Histogram()
        hist.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist.total += seconds

    def attempt(self, replica: str, provider: str, outcome: str) -> None:
        key = (replica, provider, outcome)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def keep_replicas(self, replicas: set[str]) -> None:
        """Drop the attempt counters of replicas no longer routed to (their series end):
        published replicas come and go, and their counters must not pile up."""
        for key in [k for k in self.attempts if k[0] not in replicas]:
            del self.attempts[key]

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "archipel_gateway_requests", "Requests answered.", labels=["tenant", "model", "status"]
        )
        for (tenant, model, status), n in list(self.requests.items()):
            requests.add_metric([tenant, model, str(status)], n)
        yield requests
        attempts = CounterMetricFamily(
            "archipel_gateway_upstream_attempts",
            "Attempts at replicas, by outcome.",
            labels=["replica", "provider", "outcome"],
        )
        for (replica, provider, outcome), n in list(self.attempts.items()):
            attempts.add_metric([replica, provider, outcome], n)
        yield attempts
        latency = HistogramMetricFamily(
            "archipel_gateway_request_seconds",
            "Request latency as the client saw it.",
            labels=["model"],
        )
        for model, hist in list(self.latency.items()):
            running, buckets = 0, []
            for label, n in zip(_BUCKET_LABELS, hist.counts, strict=True):
                running += n
                buckets.append((label, float(running)))
            latency.add_metric([model], buckets, hist.total)
        yield latency
