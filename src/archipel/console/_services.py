"""``/ui/services``: the tenant's running inference services, each model's replicas by
site, provider and country: what ``GET /v1/routes`` publishes for the gateway, as a
table (never the services' credentials).

Every role sees its own tenant's services and those another tenant published to it
(``serve.publish_to``), as on the API. What the gateway does with them (health,
circuit state, traffic per replica) is the gateway's to say, at its ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from archipel.console._auth import Console, Viewer, console, viewer
from archipel.console._render import fragment, page

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


def _models(ui: Console, seen: Viewer) -> dict[str, Any]:
    sites = ui.reconciler.sites
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
            )
        )
    ordered = [
        (m, sorted(models[m], key=lambda r: r.name), len({r.country for r in models[m]}))
        for m in sorted(models)
    ]
    return {"models": ordered, "viewer": seen}


@router.get("/services")
def services_page(request: Request, ui: Ui, seen: Seen) -> Response:
    """Each served model and its running replicas; polled while the page is open."""
    return page(request, "services.html", _models(ui, seen))


@router.get("/services/table")
def services_table(request: Request, ui: Ui, seen: Seen) -> Response:
    return fragment(request, "services_table.html", _models(ui, seen))
