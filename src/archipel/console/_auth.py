"""Who is looking: the session behind a request, the roles it has, sign-in and sign-out.

The console enforces the API's roles (see :mod:`archipel.controlplane`): every
role sees its own tenant's runs and nothing of another tenant's; a ``viewer``
cannot cancel; only an ``admin`` lists the sites, sees the ledger's spend and runs
simulations (which every role of its tenant sees).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from archipel.console._session import SESSION_COOKIE, Session, Signer
from archipel.controlplane import Principal, Reconciler, Store
from archipel.core import ArchipelError
from archipel.placement import Planner

if TYPE_CHECKING:
    from archipel.console._fleet import FleetPlanner
    from archipel.console._simulations import Simulator
    from archipel.console._spend import Spend
    from archipel.console._traffic import TrafficReader

#: the roles that may cancel a run, the one that lists the sites, and the one that reads the
#: ledger (``/v1/ledger/*``), as in the API
CANCELLERS = frozenset({"submitter", "admin"})
SITE_LISTERS = frozenset({"admin"})
SPEND_READERS = frozenset({"admin"})
#: the role that runs simulations (every role of the tenant sees them)
SIMULATION_RUNNERS = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class Console:
    """What the console's handlers are given: the control plane's parts, the signer, a clock."""

    store: Store
    reconciler: Reconciler
    signer: Signer
    clock: Callable[[], float]  # seconds since the epoch
    planner: Callable[[], Planner] | None = None  # the plan form's engine, built on first use
    spend: Spend | None = None  # the ledger's figures; None when the server keeps no ledger
    simulator: Simulator | None = None  # runs uploaded scenarios; None: this server runs none
    fleet: FleetPlanner | None = None  # plans uploaded fleet files; None: no fleet form
    traffic: TrafficReader | None = None  # the gateway's per-replica figures, when configured


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in caller: its principal, and the CSRF token its forms carry."""

    who: Principal
    session: Session
    csrf: str

    @property
    def may_cancel(self) -> bool:
        return self.who.role in CANCELLERS

    @property
    def may_list_sites(self) -> bool:
        return self.who.role in SITE_LISTERS

    @property
    def may_see_spend(self) -> bool:
        return self.who.role in SPEND_READERS

    @property
    def may_simulate(self) -> bool:
        return self.who.role in SIMULATION_RUNNERS


class ConsoleError(ArchipelError):
    """The console's refusals, each answered as a page (never a traceback)::

    ConsoleError
    ├── NotSignedInError   no valid session: to the sign-in page
    └── RefusedError       an error page with a status and a sentence
    """


class NotSignedInError(ConsoleError):
    """No valid session: the caller is sent to the sign-in page, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class RefusedError(ConsoleError):
    """A request the console answers with an error page: ``status`` and a sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def viewer(request: Request) -> Viewer:
    """The signed-in caller (a dependency); :class:`NotSignedInError` without a valid session.

    A session whose token was revoked since is no session: the token is looked
    up by its id on every request (through the store's short cache).
    """
    ui = console(request)
    session = ui.signer.read(request.cookies.get(SESSION_COOKIE), ui.clock())
    who = None if session is None else ui.store.token_principal(session.token_id)
    if session is None or who is None:
        raise NotSignedInError(request.url.path)
    return Viewer(who, session, ui.signer.csrf(session.nonce))


def safe_next(path: str | None, base: str) -> str:
    """Where to go after signing in: a path of the console, never another site."""
    fallback = f"{base}/runs"
    if not path or not path.startswith(f"{base}/") or path.startswith("//") or "\\" in path:
        return fallback
    return path


def sign_in_redirect(request: Request, base: str, next_path: str) -> Response:
    """To the sign-in page; an htmx poll is told to load it as a whole page."""
    target = f"{base}/login?next={quote(next_path, safe='/')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def form(request: Request) -> dict[str, str]:
    """A posted form (``application/x-www-form-urlencoded``), one value per field."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def check_csrf(ui: Console, seen: Viewer, fields: dict[str, str]) -> None:
    """Refuse a state-changing form that does not carry the session's CSRF token."""
    if not ui.signer.csrf_ok(seen.session.nonce, fields.get("csrf")):
        raise RefusedError(
            403,
            "this form is out of date or did not come from this console; "
            "reload the page and try again",
        )
