"""``/v1/routes``: where the running inference services are reached, for the gateway.

One entry per served model, one replica per running run whose attempt listens
on a port, in the gateway's own replica format (see :mod:`archipel.controlplane._api`
for who sees which services). The answer carries an ``ETag`` (a hash of the
body): a poller that sends it back in ``If-None-Match`` gets a bodiless 304
while nothing changed.
"""

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Response

from archipel.controlplane._api_deps import Ctx, Who
from archipel.controlplane._records import AttemptView, RunView
from archipel.controlplane._schemas import ERRORS, ModelRoutesOut, PriceOut, ReplicaOut, RoutesOut
from archipel.controlplane._sites import Site
from archipel.core import ServeSpec

router = APIRouter()


def _decimal(value: Decimal) -> str:
    return format(value, "f")  # plain digits: never 1E+2


def _reach(site: Site, attempt: AttemptView) -> str | None:
    """The host part of a service's URL, or ``None`` while it is not known."""
    host = site.spec.address or attempt.host
    if host is None and site.spec.backend == "local":
        host = "127.0.0.1"
    if host is not None and ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return host


def _replica(run: RunView, serve: ServeSpec, site: Site, base_url: str) -> ReplicaOut:
    """A running service as one replica of the gateway's route table."""
    return ReplicaOut(
        name=run.id,
        tenant=run.tenant,
        key=run.service_key,
        provider=site.spec.provider,
        region=site.spec.region,
        country=site.spec.country,
        base_url=base_url,
        max_concurrency=serve.max_concurrency,
        weight=serve.weight,
        health_path=serve.health_path,
        price=PriceOut(
            currency=serve.price.currency,
            input_per_million=_decimal(serve.price.input_per_million),
            output_per_million=_decimal(serve.price.output_per_million),
        ),
    )


def routes(
    services: list[tuple[RunView, AttemptView]], sites: Mapping[str, Site], tenant: str
) -> RoutesOut:
    """The route table of these running services, as ``tenant`` sees it (see the module
    docstring; the caller picks the services ``tenant`` may see).

    A service on a site no longer declared, or whose host is not known yet, is
    left out until it is. When several tenants serve one model name (a service
    published to ``tenant`` beside its own) their replicas are merged, each
    naming its owner, and ``owned_by`` is that of the replica first by name.
    """
    replicas: dict[str, list[tuple[ReplicaOut, str]]] = {}
    for run, attempt in services:
        serve = run.workload.serve
        site = sites.get(attempt.site)
        host = None if site is None else _reach(site, attempt)
        if serve is None or site is None or host is None or attempt.port is None:
            continue
        replica = _replica(run, serve, site, f"http://{host}:{attempt.port}{serve.path}")
        replicas.setdefault(serve.model, []).append((replica, serve.owned_by or run.tenant))
    models = {}
    for model in sorted(replicas):
        ordered = sorted(replicas[model], key=lambda pair: pair[0].name)
        models[model] = ModelRoutesOut(
            owned_by=ordered[0][1], replicas=[replica for replica, _ in ordered]
        )
    return RoutesOut(tenant=tenant, models=models)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names this ETag (weak or strong) or is ``*``."""
    if if_none_match is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get(
    "/v1/routes",
    response_model=RoutesOut,
    responses={
        **ERRORS,
        200: {"headers": {"ETag": {"description": "a hash of the body"}}},
        304: {"description": "Not modified: the routes still match `If-None-Match`"},
    },
)
def get_routes(
    who: Who, ctx: Ctx, if_none_match: Annotated[str | None, Header(max_length=1000)] = None
) -> Response:
    """Where the running inference services are reached: the gateway's route table.

    Every role sees its tenant's own services and those published to its
    tenant, never another tenant's. Send the ``ETag`` back in
    ``If-None-Match`` to get a 304 while nothing changed.
    """
    services = ctx.store.services(who.tenant)
    body = routes(services, ctx.reconciler.sites, who.tenant).model_dump_json().encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})
