"""``/ui/sites``: each declared site, where it is and under which jurisdiction, how full
and how healthy (admins only, as ``GET /v1/sites``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from archipel.console._auth import Console, RefusedError, Viewer, console, viewer
from archipel.console._render import fragment, page
from archipel.core import ProviderFacts

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]


@dataclass(frozen=True, slots=True)
class SiteRow:
    name: str
    backend: str
    provider: str
    region: str
    country: str | None
    accelerators: str
    slots: int
    in_use: int  # launching or running attempts, every tenant's
    healthy: bool
    reason: str | None
    jurisdiction: str  # the provider's legal facts, as `archipel plan` shows them


def jurisdiction(facts: ProviderFacts) -> str:
    """A provider's legal facts in one line: headquarters, CLOUD Act exposure, SecNumCloud,
    ISO 27001 (``?`` where the registry does not know)."""
    if not facts.registered:
        return "not in the provider registry"
    parts = [
        f"HQ {facts.hq_country or '?'}",
        f"CLOUD Act: {facts.cloud_act.value if facts.cloud_act else '?'}",
    ]
    if facts.secnumcloud in ("qualified", "in_progress"):
        parts.append(f"SecNumCloud {facts.secnumcloud.replace('_', ' ')}")
    iso = facts.certification("iso27001")
    parts.append({True: "ISO 27001", False: "no ISO 27001", None: "ISO 27001 ?"}[iso])
    if facts.marketplace:
        parts.append("marketplace")
    return ", ".join(parts)


def _rows(ui: Console, seen: Viewer) -> dict[str, Any]:
    if not seen.may_list_sites:
        why = f"role {seen.who.role} may not list the sites; it needs the admin role"
        raise RefusedError(403, why)
    busy = ui.store.busy()
    catalog = ui.reconciler.placer.catalog
    rows = []
    for site in ui.reconciler.sites.values():
        s, health = site.spec, site.backend.health()
        rows.append(
            SiteRow(
                s.name,
                s.backend,
                s.provider,
                s.region,
                s.country,
                s.accelerators,
                s.slots,
                busy.get(s.name, 0),
                health.healthy,
                health.reason,
                jurisdiction(catalog.provider(s.provider)),
            )
        )
    return {"sites": sorted(rows, key=lambda r: r.name), "viewer": seen}


@router.get("/sites")
def sites_page(request: Request, ui: Ui, seen: Seen) -> Response:
    """The sites: provider, region, country, slots in use, health; polled while open."""
    return page(request, "sites.html", _rows(ui, seen))


@router.get("/sites/table")
def sites_table(request: Request, ui: Ui, seen: Seen) -> Response:
    return fragment(request, "sites_table.html", _rows(ui, seen))
