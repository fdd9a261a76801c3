"""One generation of the gateway's configuration, and how the next one inherits.

A :class:`Routing` is everything one configuration decides: the route table,
each replica's health state, each tenant's key, limits and model list. The
gateway swaps it whole when the file is reloaded or the control plane
publishes new routes, and a request reads it once, when it arrives, and keeps
it to the end: a swap in the middle of a request changes nothing for it.

:func:`next_routing` builds the next generation from the previous one. What
did not change carries over, so a reload is never a way to forget:

- a replica that keeps its id and its base URL keeps its state object (in-flight
  count, latency average, circuit, health-check verdict); requests in flight on
  the old generation update the same object;
- a tenant whose limits did not change keeps its buckets (the
  :class:`~archipel.gateway._limits.Limiter` sees to that).

A replica that is new to the table starts *pending* when active health checks are on:
it gets traffic once its first check passes (unless no replica of the route has passed
one), and :meth:`Generations.swap` wakes the checks so that this happens at once.

:class:`Generations` holds the generation requests start on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from archipel.gateway import _json
from archipel.gateway._config import GatewayConfig, Tenant
from archipel.gateway._failover import ReplicaState, new_states
from archipel.gateway._route_table import Routes, RouteTable


@dataclass(slots=True)
class TenantState:
    """A tenant as the request path needs it."""

    name: str
    data_class: str
    models_body: bytes  # the /v1/models answer for its data class, serialised once
    routes: Routes  # model -> what it may use: its class's replicas, less those barred to it


@dataclass(slots=True)
class Routing:
    """Everything one configuration decides (see the module docstring)."""

    generation: int  # 1 at start, +1 per swap
    config: GatewayConfig
    table: RouteTable
    states: list[ReplicaState]  # indexed like table.replicas
    tenants: dict[str, TenantState]  # API key digest -> tenant


def next_routing(
    generation: int,
    config: GatewayConfig,
    table: RouteTable,
    old: Routing | None,
) -> Routing:
    """The generation for ``config`` and ``table``, inheriting from ``old``."""
    threshold, cooldown = config.breaker.failure_threshold, config.breaker.cooldown
    checks = config.health_checks.enabled
    kept: dict[tuple[str, str], ReplicaState] = {}
    if old is not None:
        for r, st in zip(old.table.replicas, old.states, strict=True):
            kept[(r.id, r.base_url)] = st
    states: list[ReplicaState] = []
    for r in table.replicas:
        carried = kept.get((r.id, r.base_url))
        st = new_states((r,), threshold, cooldown, checks)[0] if carried is None else carried
        st.breaker.threshold, st.breaker.cooldown = threshold, cooldown
        if not checks:  # no checks, no verdict: a verdict of the checks before is void
            st.pending = st.down = False
        states.append(st)
    tenants: dict[str, TenantState] = {}
    for name, spec in config.tenants.items():
        state = _tenant(name, spec, config, table)
        for digest in spec.key_sha256:
            tenants[digest] = state
    return Routing(generation, config, table, states, tenants)


def _tenant(
    name: str,
    spec: Tenant,
    config: GatewayConfig,
    table: RouteTable,
) -> TenantState:
    owned = {m: s.owned_by for m, s in config.models.items()}
    routes = table.tenants.get(name)
    if routes is None:  # a table built without tenants' views: its class's routes
        routes = table.by_data_class.get(spec.data_class, {})
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": owned[m]}
        for m in sorted(m for m, r in routes.items() if r.replicas)
    ]
    body = _json.dumps({"object": "list", "data": data})
    return TenantState(name, spec.data_class, body, routes)


class Generations:
    """The generation requests start on; a swap replaces it whole."""

    __slots__ = ("current", "swapped")

    def __init__(self, first: Routing) -> None:
        self.current = first
        self.swapped = asyncio.Event()  # set by each swap, cleared by whoever waits on it

    def swap(self, routing: Routing) -> None:
        """Serve ``routing`` from the next request on."""
        self.current = routing
        self.swapped.set()
