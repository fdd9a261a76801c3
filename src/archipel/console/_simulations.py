"""``/ui/simulations``: study 3 (``archipel simulate SCENARIO.yaml``) run from the console.

How results reach the server: a tenant's **admin** uploads a scenario YAML and
the openb trace it replays; the server checks both at once as the command
reads them (a bad one is refused with the command's own message, nothing is
queued), stores them (:class:`archipel.controlplane.Simulations`), and its
worker runs one simulation at a time as ``archipel simulate SCENARIO.yaml
--json`` in a process of its own, with a time limit, and stores the document
it prints. Each simulation has its own address (``/ui/simulations/ID``) that
shows the strategies' comparison table and the plots ``--report`` draws, and
refreshes itself until the simulation has ended.

Who may do what: a simulation belongs to its tenant, like a run. Every role of
the tenant sees its simulations (they are analysis, like a plan); only an
admin runs one (it costs the server minutes of CPU); another tenant's is not
found. The uploaded trace stands for the file the scenario names, so an
upload never makes the server read its own disk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from archipel.console._auth import Console, RefusedError, Viewer, check_csrf, console, viewer
from archipel.console._render import base, fragment, page
from archipel.console._svg import strict
from archipel.console._upload import Part, multipart, plain
from archipel.controlplane import SimulationView
from archipel.core import InputError
from archipel.sim import duration, scenario_plots

router = APIRouter()

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]

#: the largest scenario file taken (a scenario is a page of YAML); the trace is bounded by
#: the server's --max-body, as every request is
MAX_SCENARIO_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Simulator:
    """What ``archipel server`` gives the console to run simulations.

    ``check(scenario, trace_name, trace)`` reads an upload as ``archipel simulate``
    would and gives the scenario's name, or raises :class:`InputError` with the
    command's message; ``wake()`` tells the worker one was queued; at most
    ``max_unfinished`` of one tenant's may be queued or running at once, and one
    runs for ``time_limit_minutes`` at most.
    """

    check: Callable[[str, str, str], str]
    wake: Callable[[], None]
    max_unfinished: int = 3
    time_limit_minutes: float = 15


def _own(ui: Console, seen: Viewer, sim_id: str) -> SimulationView:
    found = ui.store.simulations.get(sim_id, seen.who.tenant)
    if found is None:
        raise RefusedError(404, f"no simulation {sim_id!r}")
    return found


def _figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy, as ``archipel simulate`` prints its table."""
    rows = []
    for s in result["strategies"]:
        shares = s["spend_share"]
        top = max(shares, key=lambda p: Decimal(shares[p])) if shares else None
        done_hours = Decimal(s["done_gpu_hours"])
        rows.append(
            {
                **s,
                "cost_text": f"{Decimal(s['cost']):,.2f}",
                "per_done": f"{Decimal(s['cost']) / done_hours:,.2f}" if done_hours else "-",
                "wait_p95": duration(s["wait_p95_s"]),
                "recovery": "-" if s["recovery_mean_s"] is None else duration(s["recovery_mean_s"]),
                "all_down": duration(s["dark_hours"] * 3600),
                "top": "-" if top is None else f"{top} {Decimal(shares[top]):.0%}",
            }
        )
    return rows


#: the plots of ended simulations, by id (a result never changes once recorded), the latest
_PLOTS: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_PLOTS_KEPT = 32
_PLOTS_LOCK = threading.Lock()  # pages are rendered in the server's thread pool


def _plots(sim: SimulationView) -> tuple[str, ...]:
    """The plots of ``sim``'s result under the console's CSP, drawn once per simulation."""
    assert sim.result is not None
    with _PLOTS_LOCK:
        drawn = _PLOTS.get(sim.id)
    if drawn is None:
        drawn = tuple(strict(p) for p in scenario_plots(sim.result))
        with _PLOTS_LOCK:
            _PLOTS[sim.id] = drawn
            while len(_PLOTS) > _PLOTS_KEPT:
                _PLOTS.popitem(last=False)
    return drawn


def _context(ui: Console, seen: Viewer, sim: SimulationView) -> dict[str, Any]:
    context: dict[str, Any] = {"sim": sim, "viewer": seen, "rows": [], "plots": ()}
    if sim.result is not None:
        context["rows"] = _figures(sim.result)
        context["plots"] = _plots(sim)
    return context


def _list_context(ui: Console, seen: Viewer, error: str | None = None) -> dict[str, Any]:
    return {
        "viewer": seen,
        "simulator": ui.simulator,
        "simulations": ui.store.simulations.list(seen.who.tenant),
        "error": error,
        "max_scenario_kib": MAX_SCENARIO_BYTES // 1024,
    }


@router.get("/simulations")
def simulations_page(request: Request, ui: Ui, seen: Seen) -> Response:
    """The tenant's simulations, newest first, and (for admins) the upload form."""
    return page(request, "simulations.html", _list_context(ui, seen))


@router.get("/simulations/table")
def simulations_table(request: Request, ui: Ui, seen: Seen) -> Response:
    return fragment(request, "simulations_table.html", _list_context(ui, seen))


@router.post("/simulations")
async def run_simulation(request: Request, ui: Ui, seen: Seen) -> Response:
    """Queue an uploaded scenario and its trace (admins), then show its page."""
    fields = await multipart(request)
    check_csrf(ui, seen, {"csrf": plain(fields, "csrf")})
    if not seen.may_simulate:
        raise RefusedError(
            403, f"role {seen.who.role} may not run simulations; it needs the admin role"
        )
    if ui.simulator is None:
        raise RefusedError(404, "this server does not run simulations")
    try:
        sim_id = await run_in_threadpool(_queue, ui, seen, fields)
    except InputError as exc:
        listed = await run_in_threadpool(_list_context, ui, seen, str(exc))
        return page(request, "simulations.html", listed, status=400)
    return RedirectResponse(f"{base(request)}/simulations/{sim_id}", status_code=303)


def _queue(ui: Console, seen: Viewer, fields: dict[str, Part]) -> str:
    """The new simulation's id; :class:`InputError` saying what is wrong with the upload."""
    assert ui.simulator is not None
    scenario, trace = fields.get("scenario"), fields.get("trace")
    if scenario is None or not scenario.data:
        raise InputError("choose a scenario file (YAML, as `archipel simulate` reads it)")
    if trace is None or not trace.data:
        raise InputError("choose the trace the scenario replays (an openb pod list, CSV)")
    if len(scenario.data) > MAX_SCENARIO_BYTES:
        raise InputError(
            f"the scenario is larger than {MAX_SCENARIO_BYTES // 1024} KiB; a scenario is a page"
        )
    if ui.store.simulations.unfinished(seen.who.tenant) >= ui.simulator.max_unfinished:
        raise InputError(
            f"{ui.simulator.max_unfinished} of your tenant's simulations are already queued "
            "or running; wait for one to end"
        )
    scenario_text = scenario.text("the scenario")
    trace_text = trace.text("the trace")
    trace_name = trace.filename or "trace.csv"
    name = ui.simulator.check(scenario_text, trace_name, trace_text)
    sim_id = ui.store.simulations.submit(
        seen.who.tenant, name, scenario_text, trace_name, trace_text
    )
    ui.simulator.wake()
    return sim_id


@router.get("/simulations/{sim_id}")
def simulation_page(request: Request, ui: Ui, seen: Seen, sim_id: str) -> Response:
    """One simulation: its state until it ends, then the table and the plots."""
    return page(request, "simulation.html", _context(ui, seen, _own(ui, seen, sim_id)))


@router.get("/simulations/{sim_id}/live")
def simulation_live(request: Request, ui: Ui, seen: Seen, sim_id: str) -> Response:
    """The simulation's state and results, for polling (304 while unchanged)."""
    return fragment(request, "simulation_live.html", _context(ui, seen, _own(ui, seen, sim_id)))
