"""Traffic and errors per replica, read from the inference gateway's Prometheus ``/metrics``.

The gateway and the control plane are separate processes (often several gateways);
``archipel server`` is told where one gateway's metrics are (``--gateway-metrics
URL``) and the services view reads them, at most once every
:data:`CACHE_SECONDS` whoever asks. Per replica (the gateway names a replica
published by the control plane ``MODEL/RUN_ID``) it shows the attempts the gateway
made at it and how many failed, whether it passes its health checks, its circuit
and the requests in flight. The counters are the gateway's since it started.

A tenant sees these figures for its own replicas only: a replica published to it
by another tenant carries that tenant's traffic too, which is not its to read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

#: how long one reading of the gateway's metrics is shown before it is read again
CACHE_SECONDS = 2.0
#: the gateway's circuit states, by the value of ``archipel_gateway_circuit_state``
CIRCUIT = {0: "closed", 1: "half-open", 2: "open"}
_RANK = {name: value for value, name in CIRCUIT.items()}


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    """Where the gateway's metrics are (``url``) and how to read them: ``fetch()`` gives
    the text of ``/metrics`` or raises :class:`OSError` saying why it could not."""

    url: str
    fetch: Callable[[], str]


@dataclass(slots=True)
class ReplicaTraffic:
    """One replica as the gateway sees it."""

    requests: int = 0  # attempts the gateway made at it (a retried request counts twice)
    errors: int = 0  # of those, the ones that failed
    up: bool | None = None  # passes its health checks
    circuit: str | None = None
    outstanding: int | None = None


@dataclass(frozen=True, slots=True)
class Traffic:
    """One reading: the figures by replica id, or why there are none."""

    url: str | None  # None: no gateway configured
    replicas: dict[str, ReplicaTraffic] = field(default_factory=dict)
    error: str | None = None


def parse(text: str) -> dict[str, ReplicaTraffic]:
    """The per-replica figures of a gateway's ``/metrics`` text (:class:`ValueError` if it is
    not Prometheus' text format).

    A gateway of several worker processes answers for all of them, one sample per
    worker: the counts and the requests in flight are added up, a replica is down if a
    worker finds it down, and its circuit is the most open one."""
    found: dict[str, ReplicaTraffic] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            replica = s.labels.get("replica")
            if replica is None:
                continue
            r = found.setdefault(replica, ReplicaTraffic())
            if s.name == "archipel_gateway_upstream_attempts_total":
                r.requests += int(s.value)
                if s.labels.get("outcome") != "ok":
                    r.errors += int(s.value)
            elif s.name == "archipel_gateway_replica_up":
                r.up = (s.value == 1) and (r.up is not False)
            elif s.name == "archipel_gateway_circuit_state":
                worst = max(int(s.value), _RANK.get(r.circuit, -1) if r.circuit else -1)
                r.circuit = CIRCUIT.get(worst, "unknown")
            elif s.name == "archipel_gateway_outstanding":
                r.outstanding = (r.outstanding or 0) + int(s.value)
    return found


class TrafficReader:
    """Reads the gateway's metrics for the services view, at most once per
    :data:`CACHE_SECONDS` (pages of every viewer poll it every few seconds)."""

    def __init__(self, metrics: GatewayMetrics | None, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Traffic] | None = None

    def read(self) -> Traffic:
        if self.metrics is None:
            return Traffic(None)
        with self._lock:  # one reading at a time: the others wait for it and share it
            now = self.clock()
            if self._last is not None and 0 <= now - self._last[0] < CACHE_SECONDS:
                return self._last[1]
            traffic = self._read(self.metrics)
            self._last = (now, traffic)
            return traffic

    @staticmethod
    def _read(metrics: GatewayMetrics) -> Traffic:
        try:
            return Traffic(metrics.url, parse(metrics.fetch()))
        except OSError as exc:
            return Traffic(metrics.url, error=str(exc) or type(exc).__name__)
        except ValueError as exc:
            return Traffic(metrics.url, error=f"not Prometheus metrics: {exc}")
