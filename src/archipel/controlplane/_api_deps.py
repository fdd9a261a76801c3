"""What the API's handlers are given: the control plane's parts and who is calling.

:func:`create_app` puts the parts (:class:`Parts`) on the application; the
handlers take them, and the caller's :class:`Principal`, as dependencies. The
dependencies are async: they run on the event loop, not in a worker thread.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from archipel.controlplane._http import UNAUTHENTICATED
from archipel.controlplane._quotas import Quotas
from archipel.controlplane._reconcile import Reconciler
from archipel.controlplane._records import Principal, RunView
from archipel.controlplane._store import Store


@dataclass(frozen=True, slots=True)
class Parts:
    """The control plane the API fronts: its store, its reconciler (which owns the sites,
    the placer and the uploaded workdirs) and the tenants' quotas."""

    store: Store
    reconciler: Reconciler
    quotas: Quotas

    def own_run(self, run_id: str, who: Principal) -> RunView:
        """The caller's run ``run_id``; another tenant's is a 404, as if it did not exist."""
        run = self.store.get(run_id)
        if run is None or run.tenant != who.tenant:
            raise HTTPException(404, f"no run {run_id!r}")
        return run


async def parts(request: Request) -> Parts:
    found: Parts = request.app.state.parts
    return found


async def principal(request: Request) -> Principal:
    """The caller, as the guard middleware authenticated it from the token."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:  # not reached: the guard refuses such a request first
        raise HTTPException(401, UNAUTHENTICATED, headers={"WWW-Authenticate": "Bearer"})
    return who


def may(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if its role is one of ``roles`` (else a 403 naming them)."""

    async def checked(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise HTTPException(
                403, f"role {who.role} may not do this; it needs the {' or '.join(roles)} role"
            )
        return who

    return checked


Ctx = Annotated[Parts, Depends(parts)]
Who = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(may("submitter", "admin"))]
Admin = Annotated[Principal, Depends(may("admin"))]
RunId = Annotated[str, Path(max_length=40)]  # as stored
