"""The control plane's HTTP API (FastAPI; OpenAPI at ``/openapi.json``).

Every call but ``/healthz`` and the API's description (``/openapi.json``)
needs ``Authorization: Bearer <token>``, checked before the body is
read (see :mod:`archipel.controlplane._http` for the limits on a request). A
token belongs to one tenant and has a role: ``viewer`` reads, ``submitter``
also submits and cancels, ``admin`` also lists sites. A tenant only ever sees
its own runs: another tenant's run is a 404, as if it did not exist.

Every refusal is JSON ``{"detail": ...}``: a sentence, or for a 422 the list of
problems, each ``<field path>: <what to change>``.

An inference workload with ``replicas: N`` is submitted as a group of N runs
(``<name>-1`` .. ``<name>-N``, sharing ``group``); the submission answers with
the first and ``GET /v1/runs?group=<id>`` lists them all. Each replica is a run
of its own: placed under the workload's ``spread``, recovered and cancelled on
its own, and routed as one replica of the model.

``GET /v1/routes`` publishes, for the inference gateway, where the running
services can be reached: one entry per served model, one replica per running
run whose attempt listens on a port, in the gateway's own replica format. Every
token, whatever its role, sees its own tenant's services and those another
tenant's admin published to it (``serve.publish_to``), never any other: each
replica names its owner tenant and carries the credential issued to that
service alone. The answer carries an ``ETag`` (a hash of the body): a poller
that sends it back in ``If-None-Match`` gets a bodiless 304 while nothing
changed.

This module composes the application: the guard, the routers, and how a
refusal becomes an answer. The handlers are thin, one module per resource:
``_api_runs`` (runs and workdirs: submitting is the use case
:func:`archipel.controlplane._submit.submit`), ``_api_sites``, ``_api_routes``;
what they are given is in ``_api_deps`` and the documents they answer in
``_schemas``.
"""

import json
from collections.abc import Collection
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from archipel.controlplane import _api_routes, _api_runs, _api_sites
from archipel.controlplane._api_deps import Parts
from archipel.controlplane._http import Guard, Limits
from archipel.controlplane._quotas import Quotas
from archipel.controlplane._reconcile import Reconciler
from archipel.controlplane._store import Store
from archipel.controlplane._submit import NotPermittedError, OverQuotaError, SubmissionError
from archipel.core import field_problem

#: calls answered without a token
PUBLIC = frozenset({"/healthz", "/openapi.json"})


class _Json(JSONResponse):
    """JSON in ASCII: an error that quotes the input renders whatever that input was."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode()


def _problems(exc: RequestValidationError) -> list[str]:
    """A request's validation errors as spec problems, the body's fields named from its root."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "json_invalid":
            problems.append(f"(document): not valid JSON: {error['ctx']['error']}")
        elif loc == ("body", "run") and error["type"] == "missing":
            problems.append(
                "run: required to run a workload: give run.command "
                "(what to execute, e.g. [python, train.py])"
            )
        else:
            problems.append(field_problem({**error, "loc": loc[1:] if loc[0] == "body" else loc}))
    return problems


async def _bad_input(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _Json({"detail": _problems(exc)}, status_code=422)


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _Json({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _submission_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A refused submission: 403 (a sentence) for the role, else the problems, 422 or 429."""
    assert isinstance(exc, SubmissionError)
    if isinstance(exc, NotPermittedError):
        return _Json({"detail": "; ".join(exc.problems)}, status_code=403)
    status = 429 if isinstance(exc, OverQuotaError) and exc.now else 422
    return _Json({"detail": exc.problems}, status_code=status)


async def _bad_value(_request: Request, exc: Exception) -> JSONResponse:
    return _Json({"detail": [f"(document): {exc}"]}, status_code=422)


def create_app(
    store: Store,
    reconciler: Reconciler,
    *,
    limits: Limits | None = None,
    quotas: Quotas | None = None,
    open_prefixes: Collection[str] = (),
) -> FastAPI:
    """The API over one store and one reconciler (which owns the sites), under ``quotas``.

    Paths under ``open_prefixes`` pass the token check: the caller mounts there
    what authenticates its callers itself (the console, under ``/ui``).
    """
    app = FastAPI(
        title="Archipel control plane",
        version="1",
        description="Submit workloads, watch them run, read their logs, cancel them.",
        # FastAPI's /docs and /redoc pages load their scripts from a CDN, so they are blank
        # offline: the API is described by /openapi.json alone
        docs_url=None,
        redoc_url=None,
    )
    app.state.parts = Parts(store, reconciler, quotas if quotas is not None else Quotas())
    # the token is checked there, from the headers alone (async: on the event loop;
    # verified tokens are cached by the store, so this rarely touches the database)
    app.add_middleware(
        Guard,
        authenticate=store.authenticate,
        public=PUBLIC,
        limits=limits or Limits(),
        open_prefixes=open_prefixes,
    )
    app.get("/healthz")(healthz)
    # the order of the routers is that of the paths in /openapi.json
    for router in (_api_runs.router, _api_sites.router, _api_routes.router):
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _bad_input)
    app.add_exception_handler(StarletteHTTPException, _refused)
    app.add_exception_handler(SubmissionError, _submission_refused)
    app.add_exception_handler(ValueError, _bad_value)
    return app


def healthz() -> dict[str, str]:
    return {"status": "ok"}
