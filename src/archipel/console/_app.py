"""The console's application: sign-in and sign-out, the views' routers, the static files.

:func:`mount` puts it under ``/ui`` on the control plane's own application
(one process, one address); the control plane's token guard lets ``/ui``
through (``create_app(open_prefixes=...)``) because the console
authenticates its callers itself, with a session cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from archipel.console import _fleet, _plan, _runs, _services, _simulations, _sites, _spend
from archipel.console._auth import (
    Console,
    NotSignedInError,
    RefusedError,
    Viewer,
    check_csrf,
    console,
    form,
    safe_next,
    sign_in_redirect,
    viewer,
)
from archipel.console._fleet import FleetPlanner
from archipel.console._render import base, page
from archipel.console._session import (
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Signer,
)
from archipel.console._simulations import Simulator
from archipel.console._spend import Spend
from archipel.console._traffic import GatewayMetrics, TrafficReader
from archipel.controlplane import Reconciler, Store
from archipel.placement import Planner

#: where :func:`mount` puts the console on the control plane's application
PREFIX = "/ui"

Ui = Annotated[Console, Depends(console)]
Seen = Annotated[Viewer, Depends(viewer)]


def create_console(
    store: Store,
    reconciler: Reconciler,
    *,
    key: bytes,
    clock: Callable[[], float],
    planner: Callable[[], Planner] | None = None,
    spend: Spend | None = None,
    simulator: Simulator | None = None,
    fleet: FleetPlanner | None = None,
    gateway: GatewayMetrics | None = None,
) -> FastAPI:
    """The console over the control plane's store and reconciler.

    ``key`` signs the session cookies and CSRF tokens (at least 32 bytes; the
    server keeps it in its data directory); ``clock`` gives seconds since the
    epoch, for the sessions' expiry; ``planner`` gives the engine over the whole
    catalog that the plan form uses (without it, there is no plan form);
    ``spend`` gives the ledger's figures (without it, the spend view says the
    server keeps no ledger); ``simulator`` checks and runs uploaded scenarios
    (without it, the simulations view shows those stored and runs none); ``fleet``
    plans uploaded fleet files (without it, the plan page has no fleet form);
    ``gateway`` says where the gateway's metrics are (without it, the services view
    says that no gateway is configured).
    """
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    traffic = TrafficReader(gateway, clock)
    app.state.console = Console(
        store, reconciler, Signer(key), clock, planner, spend, simulator, fleet, traffic
    )
    app.get("/")(home)
    app.get("/login")(login_form)
    app.post("/login")(login)
    app.post("/logout")(logout)
    app.include_router(_runs.router)
    app.include_router(_services.router)
    app.include_router(_sites.router)
    app.include_router(_fleet.router)  # before the plan's router: /plan/fleet is its own
    app.include_router(_plan.router)
    app.include_router(_spend.router)
    app.include_router(_simulations.router)
    static = Path(str(files("archipel.console") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_exception_handler(NotSignedInError, _sign_in_first)
    app.add_exception_handler(RefusedError, _refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_query)
    return app


def mount(
    app: FastAPI,
    store: Store,
    reconciler: Reconciler,
    *,
    key: bytes,
    clock: Callable[[], float],
    planner: Callable[[], Planner] | None = None,
    spend: Spend | None = None,
    simulator: Simulator | None = None,
    fleet: FleetPlanner | None = None,
    gateway: GatewayMetrics | None = None,
) -> None:
    """Serve the console under :data:`PREFIX` on the control plane's ``app``."""
    console = create_console(
        store,
        reconciler,
        key=key,
        clock=clock,
        planner=planner,
        spend=spend,
        simulator=simulator,
        fleet=fleet,
        gateway=gateway,
    )
    app.mount(PREFIX, console)


def home(request: Request) -> Response:
    return RedirectResponse(f"{base(request)}/runs", status_code=303)


def _secure(request: Request) -> bool:
    """Cookies are marked Secure when the console is reached over HTTPS."""
    return request.url.scheme == "https"


def login_form(request: Request, ui: Ui, next: Annotated[str | None, Query()] = None) -> Response:
    """The sign-in page: paste an API token."""
    return _login_page(request, ui, next, None, 200)


def _login_page(
    request: Request, ui: Ui, next_path: str | None, error: str | None, status: int
) -> Response:
    nonce = ui.signer.login_nonce(ui.clock())
    answer = page(
        request,
        "login.html",
        {
            "csrf": ui.signer.csrf(nonce),
            "next": safe_next(next_path, base(request)),
            "error": error,
            "viewer": None,
        },
        status=status,
    )
    answer.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_SECONDS,
        path=f"{base(request)}/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return answer


async def login(request: Request, ui: Ui) -> Response:
    """Exchange an API token for a session cookie (the token itself is never stored)."""
    fields = await form(request)
    next_path = safe_next(fields.get("next"), base(request))
    if not ui.signer.login_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf"), ui.clock()):
        why = "this sign-in form is out of date; sign in again"
        return _login_page(request, ui, next_path, why, 403)
    token = fields.get("token", "").strip()
    who = ui.store.authenticate(token) if token else None
    if who is None:
        why = (
            "unknown, malformed or revoked API token: paste a token from "
            "`archipel token create` (or the one `archipel server` wrote to its data directory)"
        )
        return _login_page(request, ui, next_path, why, 401)
    _, cookie = ui.signer.open(who.token_id, ui.clock())
    answer = RedirectResponse(next_path, status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path=f"{base(request)}/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    answer.delete_cookie(LOGIN_COOKIE, path=f"{base(request)}/")
    return answer


async def logout(request: Request, ui: Ui, seen: Seen) -> Response:
    """Sign out: the session cookie is dropped (the API token stays valid)."""
    check_csrf(ui, seen, await form(request))
    answer = RedirectResponse(f"{base(request)}/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path=f"{base(request)}/")
    return answer


# -- refusals as pages ----------------------------------------------------------------


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotSignedInError)
    return sign_in_redirect(request, base(request), exc.next_path)


def _error_page(request: Request, status: int, message: str) -> Response:
    try:
        seen: Viewer | None = viewer(request)
    except NotSignedInError:
        seen = None
    context = {"status": status, "message": message, "viewer": seen}
    return page(request, "error.html", context, status=status)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RefusedError)
    return _error_page(request, exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = "no such page in the console" if exc.status_code == 404 else str(exc.detail)
    return _error_page(request, exc.status_code, message)


async def _bad_query(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"][1:]) or "request"
        lines.append(f"{where}: {error['msg']}")
    return _error_page(request, 400, "; ".join(lines) + " (change the address and try again)")
