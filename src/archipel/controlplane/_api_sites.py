"""``/v1/sites``: the declared sites, their mapping and their health (admins only)."""

from fastapi import APIRouter

from archipel.controlplane._api_deps import Admin, Ctx
from archipel.controlplane._schemas import ERRORS, FORBIDDEN, SiteOut

router = APIRouter()


@router.get("/v1/sites", response_model=list[SiteOut], responses={**ERRORS, **FORBIDDEN})
def sites(_admin: Admin, ctx: Ctx) -> list[SiteOut]:
    """Declared sites, their mapping to provider/region/country, and their health (admins)."""
    out = []
    for site in ctx.reconciler.sites.values():
        health = site.backend.health()
        s = site.spec
        out.append(
            SiteOut(
                name=s.name,
                backend=s.backend,
                provider=s.provider,
                region=s.region,
                country=s.country,
                accelerators=s.accelerators,
                slots=s.slots,
                healthy=health.healthy,
                reason=health.reason,
            )
        )
    return out
