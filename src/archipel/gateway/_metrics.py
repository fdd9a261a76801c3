"""Prometheus gauges read from the gateway's state at scrape time.

Outstanding requests, latency averages and circuit states change on every
request; reading them when Prometheus scrapes costs the hot path nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from archipel.gateway._failover import BreakerState, ReplicaState
from archipel.gateway._metering import Meter
from archipel.gateway._routes import Replica

_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class StateCollector(Collector):
    """Per-replica gauges plus the meter's dropped-record count."""

    def __init__(
        self, replicas: Sequence[Replica], states: Sequence[ReplicaState], meter: Meter
    ) -> None:
        self.replicas = replicas
        self.states = states
        self.meter = meter

    def collect(self) -> Iterator[Metric]:
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
        for r, st in zip(self.replicas, self.states, strict=True):
            values = [r.id, r.provider, r.region]
            outstanding.add_metric(values, st.outstanding)
            ewma.add_metric(values, st.ewma)
            circuit.add_metric(values, _STATE_VALUE[st.breaker.state])
        yield outstanding
        yield ewma
        yield circuit
        dropped = getattr(self.meter, "dropped", None)
        if isinstance(dropped, int):
            family = GaugeMetricFamily(
                "archipel_gateway_meter_dropped", "Usage records dropped: queue full."
            )
            family.add_metric([], dropped)
            yield family
