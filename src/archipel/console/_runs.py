"""``/ui/runs``: the runs list (filters, sort, pages, live) and a run's page (history,
attempts, placement, logs, cancel).

What the console shows of a run is what ``GET /v1/runs/{id}`` answers, read from
the same store under the same rule: a tenant sees its own runs only, another's
is a 404 as if it did not exist. The list is read one page at a time
(:meth:`Store.runs_page`), so it costs the same at ten runs and at ten thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from archipel.console._auth import Console, RefusedError, Viewer, check_csrf, console, form, viewer
from archipel.console._render import base, fragment, page
from archipel.controlplane import RunView, SiteState
from archipel.core import RunState

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]
Sort = Literal["newest", "oldest", "updated", "name", "state"]

#: how the sort orders read in the form
SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first",
    "updated": "last changed first",
    "name": "name",
    "state": "state",
}
#: runs per page: the default, and the most one page may hold
PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """The runs list's filters, sort and page, as the address carries them (shareable)."""

    states: tuple[RunState, ...]
    sites: tuple[str, ...]
    providers: tuple[str, ...]
    classes: tuple[str, ...]
    sort: str
    page: int
    per_page: int

    def address(self, **changes: Any) -> str:
        """The query string of this view with ``changes`` (e.g. another page)."""
        values = {
            "state": [s.value for s in self.states],
            "site": list(self.sites),
            "provider": list(self.providers),
            "class": list(self.classes),
            "sort": self.sort,
            "page": self.page,
            "per_page": self.per_page,
            **changes,
        }
        if values["sort"] == "newest":
            del values["sort"]
        if values["page"] == 1:
            del values["page"]
        if values["per_page"] == PER_PAGE:
            del values["per_page"]
        return urlencode(values, doseq=True)

    @property
    def filtered(self) -> bool:
        return bool(self.states or self.sites or self.providers or self.classes)


def runs_query(
    state: Annotated[list[RunState] | None, Query()] = None,
    site: Annotated[list[str] | None, Query()] = None,
    provider: Annotated[list[str] | None, Query()] = None,
    data_class: Annotated[list[str] | None, Query(alias="class")] = None,
    sort: Sort = "newest",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=10, le=MAX_PER_PAGE)] = PER_PAGE,
) -> RunsQuery:
    return RunsQuery(
        tuple(state or ()),
        tuple(site or ()),
        tuple(provider or ()),
        tuple(data_class or ()),
        sort,
        page,
        per_page,
    )


Filters = Annotated[RunsQuery, Depends(runs_query)]


def _sites_of(ui: Console, q: RunsQuery) -> tuple[str, ...] | None:
    """The sites a run must be on to match ``q`` (``()``: any; ``None``: none can match).

    A provider is a filter on the sites it has: a run matches one of the checked
    sites (if any) that belongs to one of the checked providers (if any).
    """
    if not q.providers:
        return q.sites
    of_providers = {n for n, s in ui.reconciler.sites.items() if s.spec.provider in q.providers}
    wanted = tuple(sorted(of_providers & set(q.sites) if q.sites else of_providers))
    return wanted or None


def _table(ui: Console, seen: Viewer, q: RunsQuery) -> dict[str, Any]:
    """What the runs table shows for ``q``: one page of the tenant's runs and the count."""
    sites = _sites_of(ui, q)
    runs: list[RunView] = []
    total = 0
    if sites is not None:
        runs, total = ui.store.runs_page(
            seen.who.tenant,
            states=q.states,
            sites=sites,
            data_classes=q.classes,
            order=q.sort,
            offset=(q.page - 1) * q.per_page,
            limit=q.per_page,
        )
    first = (q.page - 1) * q.per_page + 1 if runs else 0
    return {
        "runs": runs,
        "total": total,
        "first": first,
        "last": first + len(runs) - 1 if runs else 0,
        "q": q,
        "previous": q.address(page=q.page - 1) if q.page > 1 else None,
        "next": q.address(page=q.page + 1) if q.page * q.per_page < total else None,
        "address": q.address(),
    }


@router.get("/runs")
def runs_page(request: Request, ui: Ui, seen: Seen, q: Filters) -> Response:
    """The runs list: filters, sort, one page of runs, polled while the page is open."""
    context = {
        **_table(ui, seen, q),
        "viewer": seen,
        "states": list(RunState),
        "site_names": sorted(ui.reconciler.sites),
        "provider_names": sorted({s.spec.provider for s in ui.reconciler.sites.values()}),
        "class_names": ui.store.data_classes(seen.who.tenant),
        "sorts": SORTS,
    }
    return page(request, "runs.html", context)


@router.get("/runs/table")
def runs_table(request: Request, ui: Ui, seen: Seen, q: Filters) -> Response:
    """The runs table alone, for polling (304 while it is unchanged)."""
    return fragment(request, "runs_table.html", {**_table(ui, seen, q), "viewer": seen})


# -- one run -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lost:
    """A site the engine turned down for a run, and why (its first reason)."""

    site: str
    reason: str
    plugin: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's decision for a run if it were placed now, as ``archipel plan`` shows it:
    the chosen site with its price, and every other site with the reason it lost."""

    site: str | None
    price: str | None
    lost: tuple[Lost, ...]
    invalid: str | None


def _own_run(ui: Console, seen: Viewer, run_id: str) -> RunView:
    run = ui.store.get(run_id)
    if run is None or run.tenant != seen.who.tenant:
        raise RefusedError(404, f"no run {run_id!r}")
    return run


def decision(ui: Console, run: RunView) -> Decision:
    """Where the engine would place ``run`` now: its blocked sites and the sites' occupancy
    applied (not their health, which only a reconcile round asks the sites for)."""
    busy = ui.store.busy()
    sites = ui.reconciler.sites
    state = SiteState(
        blocked={n: f"{n} blocked after failures" for n in run.blocked_sites},
        full={
            n: f"{n} full ({busy[n]} of {s.spec.slots} slots taken)"
            for n, s in sites.items()
            if busy.get(n, 0) >= s.spec.slots and n != run.site
        },
    )
    choice = ui.reconciler.placer.place(run.workload, state)
    if choice.plan is None:
        return Decision(None, None, (), choice.invalid)
    lost = tuple(
        Lost(r.offer.instance_type, why.reason.label, why.plugin, why.message)
        for r in choice.plan.itemised
        for why in (r.rejection,)
    )
    top = choice.plan.placements[0] if choice.plan.placements else None
    price = None if top is None else f"{top.price_per_hour.normalize():f} {top.currency}/h"
    return Decision(choice.site, price, lost, None)


#: how the history words the placement decisions it records (the reconciler's details)
_DECIDED = ("placed on ", "waiting for a site", "no site can run it")


def _run_context(ui: Console, seen: Viewer, run: RunView) -> dict[str, Any]:
    events = ui.store.events(run.id)
    return {
        "run": run,
        "workload": run.workload,
        "attempts": ui.store.attempts(run.id),
        "events": events,
        "decided": [e for e in events if e.detail and e.detail.startswith(_DECIDED)],
        "decision": None if run.state.terminal else decision(ui, run),
        "viewer": seen,
    }


@router.get("/runs/{run_id}")
def run_page(request: Request, ui: Ui, seen: Seen, run_id: str) -> Response:
    """A run: summary, placement, attempts, history and logs; live while it is open."""
    run = _own_run(ui, seen, run_id)
    return page(request, "run.html", _run_context(ui, seen, run))


@router.get("/runs/{run_id}/live")
def run_live(request: Request, ui: Ui, seen: Seen, run_id: str) -> Response:
    """The changing part of a run's page, for polling (304 while it is unchanged)."""
    run = _own_run(ui, seen, run_id)
    return fragment(request, "run_live.html", _run_context(ui, seen, run))


@router.get("/runs/{run_id}/logs")
def run_logs(
    request: Request,
    ui: Ui,
    seen: Seen,
    run_id: str,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The current attempt's output from ``offset``, and a poller for what follows (none
    once the run has finished and everything has been read)."""
    run = _own_run(ui, seen, run_id)
    sites = ui.reconciler.sites
    data, next_offset = "", offset
    if run.attempt_id is not None and run.site in sites:
        chunk = sites[run.site].backend.logs(run.attempt_id, offset)
        data, next_offset = chunk.data.decode("utf-8", "replace"), chunk.next_offset
    more = not run.state.terminal or next_offset != offset
    context = {"run": run, "data": data, "next_offset": next_offset, "more": more}
    return fragment(request, "run_logs.html", context)


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, ui: Ui, seen: Seen, run_id: str) -> Response:
    """Cancel a run (the form's CSRF token and the role checked first), back to its page."""
    check_csrf(ui, seen, await form(request))
    if not seen.may_cancel:
        raise RefusedError(
            403, f"role {seen.who.role} may not cancel runs; it needs the submitter or admin role"
        )
    run = await run_in_threadpool(_own_run, ui, seen, run_id)
    if await run_in_threadpool(ui.reconciler.cancel_latest, run) is None:
        raise RefusedError(409, "the run kept changing; try again")
    return RedirectResponse(f"{base(request)}/runs/{run.id}", status_code=303)
