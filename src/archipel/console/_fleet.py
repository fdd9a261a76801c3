"""``/ui/plan/fleet``: ``archipel fleet plan FILE.yaml`` as an upload: a whole portfolio
placed at minimum cost under its commitments, capacity, concentration and spread rules.

The page shows what the command's ``--json`` document holds, computed by the same
function the command calls on the server's catalog and policy: each workload's
placements, each provider's spend against its commitment (burned, shortfall) and
share of spend and GPU-hours, the totals, the solver's status and gap, and, when
the fleet is infeasible, which rules conflict and by how much, and what turned
every offer down for a workload nothing can take.

An uploaded fleet holds its workloads inline (naming another file would read the
server's disk) and merges no private offers. Any signed-in role may plan (it
reads no tenant's data); one fleet is solved at a time, for a few seconds at most,
and a second one meanwhile is asked to try again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from archipel.console._auth import Console, RefusedError, Viewer, check_csrf, console, viewer
from archipel.console._render import page
from archipel.console._upload import multipart, plain
from archipel.core import InputError

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]

#: the largest fleet file taken: a fleet of a few hundred workloads
MAX_FLEET_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FleetPlanner:
    """What ``archipel server`` gives the console to plan fleets: ``plan(text)`` is the
    document ``archipel fleet plan FILE --json`` prints for a file holding ``text`` (or
    :class:`InputError`), solved for ``time_limit`` seconds at most."""

    plan: Callable[[str], dict[str, Any]]
    time_limit: float = 20.0


#: one fleet solved at a time: the solver takes a core for up to its time limit
_SOLVING = threading.Lock()


def _context(seen: Viewer, **extra: Any) -> dict[str, Any]:
    return {"viewer": seen, "doc": None, "error": None, "filename": None, **extra}


@router.get("/plan/fleet")
def fleet_form(request: Request, ui: Ui, seen: Seen) -> Response:
    """The upload form."""
    if ui.fleet is None:
        raise RefusedError(404, "this server does not plan fleets from the console")
    return page(request, "fleet.html", _context(seen, fleet=ui.fleet))


@router.post("/plan/fleet")
async def fleet_plan(request: Request, ui: Ui, seen: Seen) -> Response:
    """Plan the uploaded fleet file and show the plan (or what is wrong with the file)."""
    fields = await multipart(request)
    check_csrf(ui, seen, {"csrf": plain(fields, "csrf")})
    if ui.fleet is None:
        raise RefusedError(404, "this server does not plan fleets from the console")
    upload = fields.get("fleet")
    context = _context(seen, fleet=ui.fleet)
    if upload is None or not upload.data:
        context["error"] = "choose a fleet file (YAML, as `archipel fleet plan FILE` reads it)"
        return page(request, "fleet.html", context, status=400)
    if len(upload.data) > MAX_FLEET_BYTES:
        context["error"] = f"the fleet file is larger than {MAX_FLEET_BYTES // 1024} KiB"
        return page(request, "fleet.html", context, status=400)
    text = upload.text("the fleet file")
    if not _SOLVING.acquire(blocking=False):
        raise RefusedError(429, "another fleet is being planned; try again in a few seconds")
    try:
        context["doc"] = await run_in_threadpool(ui.fleet.plan, text)
    except InputError as exc:
        context["error"] = str(exc)
        return page(request, "fleet.html", context, status=400)
    finally:
        _SOLVING.release()
    context["filename"] = upload.filename
    return page(request, "fleet.html", context)
