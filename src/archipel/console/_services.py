"""``/ui/services``: the tenant's running inference services, each model's replicas by
site, provider and country: what ``GET /v1/routes`` publishes for the gateway, as a
table (never the services' credentials), with each replica's traffic and errors,
health and circuit as the gateway reports them at its ``/metrics``
(:mod:`archipel.console._traffic`), when the server knows where that is.

Every role sees its own tenant's services and those another tenant published to it
(``serve.publish_to``), as on the API; the gateway's figures only for its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from archipel.console._auth import Console, Viewer, console, viewer
from archipel.console._render import fragment, page
from archipel.console._traffic import ReplicaTraffic, Traffic

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]


@dataclass(frozen=True, slots=True)
class Replica:
    run_id: str
    name: str
    owner: str  # the tenant that runs it
    site: str
    provider: str
    region: str
    country: str | None
    listens: str  # host:port and path, or what is not known yet
    data_classes: tuple[str, ...]  # those the policy lets use its site (the engine's verdicts)
    traffic: ReplicaTraffic | None  # the gateway's figures: own replicas, when it has them


def _models(ui: Console, seen: Viewer) -> dict[str, Any]:
    sites = ui.reconciler.sites
    allowed = ui.reconciler.placer.data_classes()
    traffic = ui.traffic.read() if ui.traffic is not None else Traffic(None)
    models: dict[str, list[Replica]] = {}
    for run, attempt in ui.store.services(seen.who.tenant):
        serve = run.workload.serve
        site = sites.get(attempt.site)
        if serve is None:
            continue
        host = (site.spec.address if site else None) or attempt.host
        if host is None and site is not None and site.spec.backend == "local":
            host = "127.0.0.1"  # as the routes say: a local site's services are on this host
        listens = f"{host}:{attempt.port}{serve.path}" if host else f"port {attempt.port}"
        models.setdefault(serve.model, []).append(
            Replica(
                run.id,
                run.name,
                run.tenant,
                attempt.site,
                site.spec.provider if site else "?",
                site.spec.region if site else "?",
                site.spec.country if site else None,
                listens,
                allowed.get(attempt.site, ()),
                # the gateway names a published replica MODEL/RUN_ID
                traffic.replicas.get(f"{serve.model}/{run.id}")
                if run.tenant == seen.who.tenant
                else None,
            )
        )
    ordered = [
        (m, sorted(models[m], key=lambda r: r.name), len({r.country for r in models[m]}))
        for m in sorted(models)
    ]
    return {"models": ordered, "viewer": seen, "traffic": traffic}


@router.get("/services")
def services_page(request: Request, ui: Ui, seen: Seen) -> Response:
    """Each served model and its running replicas; polled while the page is open."""
    return page(request, "services.html", _models(ui, seen))


@router.get("/services/table")
def services_table(request: Request, ui: Ui, seen: Seen) -> Response:
    return fragment(request, "services_table.html", _models(ui, seen))
