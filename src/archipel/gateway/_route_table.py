"""The route table: for each data class, each model, the replicas policy allows;
and for each tenant, those of them it is entitled to.

Computed once, when the configuration is loaded, by running the policy engine
over one :class:`~archipel.core.OfferClass` per replica (provider, region,
country) with the catalog's provider facts. A replica published by the control
plane is judged the same way, under this gateway's policy: the control plane's
verdict is not carried and not trusted, and where the two policies disagree the
gateway's decides (docs/gateway.md). It may also be limited to some tenants
(its owner's ``take`` rule, see :mod:`~archipel.gateway._published`): each
tenant's routes are its class's routes less the replicas it may not use, and
the very same objects as its class's when it may use them all. The request path
then only looks the answer up: it does no policy reasoning, and it cannot reach
a replica that is not in its tenant's routes, because those are the only place
replicas are picked from. Every rejected replica is kept with its reasons, so
the start-up log can say why a tenant cannot see a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum

from archipel.core import CatalogSnapshot, OfferClass, PolicyError, Reason, Rejection
from archipel.gateway._config import GatewayConfig, Pool, PublishedReplica, ReplicaSpec
from archipel.gateway._errors import GatewayConfigError
from archipel.policy import Policy, evaluate_classes

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Replica:
    """One deployment of one model, as the request path needs it."""

    index: int  # position in RouteTable.replicas and in the health state
    id: str  # "model/name"
    model: str
    name: str
    provider: str
    region: str
    country: str | None
    base_url: str  # without a trailing slash
    upstream_model: str | None
    authorization: str | None = field(repr=False)  # "Bearer <key>": never logged
    weight: float
    max_concurrency: int
    pool: Pool
    currency: str
    input_price: Decimal  # per token
    output_price: Decimal  # per token
    cost_factor: float  # >= 1: blended price relative to the model's cheapest replica
    health_path: str = "/models"  # active checks GET base_url + health_path
    owner: str | None = None  # the control-plane tenant of a published replica
    serves: frozenset[str] | None = None  # the tenants it may serve; None: every one

    @property
    def site(self) -> OfferClass:
        """The equivalence class policy judges this replica by."""
        return OfferClass(self.provider, self.region, self.country)

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """What a request cost, in :attr:`currency` (exact)."""
        return input_tokens * self.input_price + output_tokens * self.output_price


class Match(IntEnum):
    """How far a model name matched (Starlette-style match levels)."""

    NONE = 0  # no such model in the gateway
    PARTIAL = 1  # the model exists, but no replica is allowed for this data class
    FULL = 2


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """The replicas of one model that one data class may use, by pool."""

    model: str
    primary: tuple[Replica, ...]
    secondary: tuple[Replica, ...]
    rejected: tuple[tuple[str, tuple[Rejection, ...]], ...] = ()  # replica id -> why not

    @property
    def replicas(self) -> tuple[Replica, ...]:
        return self.primary + self.secondary


Routes = Mapping[str, ModelRoute]  # model -> its route


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Data class -> model -> allowed replicas, and the same per tenant; immutable."""

    replicas: tuple[Replica, ...]
    by_data_class: Mapping[str, Routes]
    models: frozenset[str]
    tenants: Mapping[str, Routes] = field(default_factory=dict)  # tenant -> what it may use

    def lookup(self, data_class: str, model: str) -> tuple[Match, ModelRoute | None]:
        """The route of ``model`` for ``data_class`` and how well the name matched."""
        route = self.by_data_class.get(data_class, {}).get(model)
        if route is not None and route.replicas:
            return Match.FULL, route
        return (Match.PARTIAL if model in self.models else Match.NONE), route

    def allowed_models(self, data_class: str) -> list[str]:
        """Models a data class can use, sorted."""
        routes = self.by_data_class.get(data_class, {})
        return sorted(m for m, r in routes.items() if r.replicas)

    def tenant_models(self, tenant: str) -> list[str]:
        """Models a tenant can use, sorted."""
        return sorted(m for m, r in self.tenants.get(tenant, {}).items() if r.replicas)


def _replicas(config: GatewayConfig, keys: Mapping[str, str]) -> tuple[Replica, ...]:
    out: list[Replica] = []
    for model, spec in config.models.items():
        blended = [r.price.input_per_million + r.price.output_per_million for r in spec.replicas]
        cheapest = min(blended)
        for r, price in zip(spec.replicas, blended, strict=True):
            out.append(_replica(len(out), model, r, keys, price, cheapest, config))
    return tuple(out)


def _replica(
    index: int,
    model: str,
    r: ReplicaSpec,
    keys: Mapping[str, str],
    price: Decimal,
    cheapest: Decimal,
    config: GatewayConfig,
) -> Replica:
    rid = f"{model}/{r.name}"
    relative = float(price / cheapest) if cheapest > 0 else (1.0 if price == 0 else 2.0)
    key = keys.get(rid)
    published = r if isinstance(r, PublishedReplica) else None
    if published is not None and published.key is not None:
        key = published.key.get_secret_value()  # issued for this service alone
    return Replica(
        index=index,
        id=rid,
        model=model,
        name=r.name,
        provider=r.provider,
        region=r.region,
        country=r.country,
        base_url=r.base_url.rstrip("/"),
        upstream_model=r.upstream_model,
        authorization=None if key is None else f"Bearer {key}",
        weight=r.weight,
        max_concurrency=r.max_concurrency,
        pool=r.pool,
        currency=r.price.currency,
        input_price=r.price.input_per_million / _MILLION,
        output_price=r.price.output_per_million / _MILLION,
        cost_factor=1.0 + config.balancing.price_weight * (relative - 1.0),
        health_path=r.health_path,
        owner=None if published is None else published.tenant,
        serves=None if published is None else published.serves,
    )


def build_route_table(
    config: GatewayConfig,
    policy: Policy,
    snapshot: CatalogSnapshot,
    upstream_keys: Mapping[str, str] | None = None,
) -> RouteTable:
    """Evaluate ``policy`` for every tenant's data class over every replica, then
    leave out of each tenant's routes the replicas it is not entitled to.

    Pure: the catalog snapshot supplies provider facts and jurisdictions, the
    caller supplies upstream keys (see :func:`resolve_upstream_keys`). A tenant
    naming a data class the policy does not define is a configuration error.
    """
    replicas = _replicas(config, upstream_keys or {})
    sites = [r.site for r in replicas]
    classes: dict[str, dict[str, ModelRoute]] = {}
    for name in sorted({t.data_class for t in config.tenants.values()}):
        try:
            data_class = policy.data_class(name)
        except PolicyError as exc:
            tenants = sorted(t for t, spec in config.tenants.items() if spec.data_class == name)
            where = ", ".join(f"tenants.{t}.data_class" for t in tenants)
            raise GatewayConfigError("route table", [f"{where}: {exc}"]) from None
        verdicts = evaluate_classes(data_class, sites, snapshot.provider, snapshot.jurisdictions)
        classes[name] = _routes_for(config, replicas, verdicts)
    limited = [r for r in replicas if r.serves is not None]
    views = {
        name: _entitled(name, classes[spec.data_class], limited)
        for name, spec in config.tenants.items()
    }
    return RouteTable(
        replicas=replicas, by_data_class=classes, models=frozenset(config.models), tenants=views
    )


def _entitled(tenant: str, routes: Routes, limited: list[Replica]) -> Routes:
    """``routes`` without the replicas ``tenant`` may not use (the same object if none)."""
    barred = {r.index for r in limited if r.serves is not None and tenant not in r.serves}
    if not barred:
        return routes
    out: dict[str, ModelRoute] = {}
    for model, route in routes.items():
        gone = [r for r in route.replicas if r.index in barred]
        if not gone:
            out[model] = route
            continue
        why = tuple(
            (
                r.id,
                (
                    Rejection(
                        Reason.NOT_ENTITLED,
                        "take",
                        f"a service of tenant {r.owner}, which control_plane.take does not "
                        f"let serve tenant {tenant}",
                    ),
                ),
            )
            for r in gone
        )
        out[model] = ModelRoute(
            model=model,
            primary=tuple(r for r in route.primary if r.index not in barred),
            secondary=tuple(r for r in route.secondary if r.index not in barred),
            rejected=route.rejected + why,
        )
    return out


def _routes_for(
    config: GatewayConfig,
    replicas: tuple[Replica, ...],
    verdicts: list[tuple[Rejection, ...]],
) -> dict[str, ModelRoute]:
    routes: dict[str, ModelRoute] = {}
    for model in config.models:
        mine = [(r, v) for r, v in zip(replicas, verdicts, strict=True) if r.model == model]
        allowed = [r for r, v in mine if not v]
        routes[model] = ModelRoute(
            model=model,
            primary=tuple(r for r in allowed if r.pool is Pool.PRIMARY),
            secondary=tuple(r for r in allowed if r.pool is Pool.SECONDARY),
            rejected=tuple((r.id, v) for r, v in mine if v),
        )
    return routes


def describe_routes(table: RouteTable) -> list[str]:
    """One line per data class and model: the replicas allowed, and why others are not;
    then the same for each tenant whose routes are narrower than its class's."""
    lines: list[str] = []
    views: list[tuple[str, Routes]] = list(table.by_data_class.items())
    shared = {id(routes) for routes in table.by_data_class.values()}
    views += [(f"tenant {t}", r) for t, r in table.tenants.items() if id(r) not in shared]
    for who, routes in views:
        for model, route in routes.items():
            allowed = ", ".join(f"{r.id} ({r.pool})" for r in route.replicas) or "none"
            lines.append(f"{who} / {model}: {allowed}")
            for rid, why in route.rejected:
                lines.append(f"    not {rid}: {why[0].message}")
    return lines
