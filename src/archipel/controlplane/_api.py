"""The control plane's HTTP API (FastAPI; OpenAPI at ``/openapi.json``).

Every call but ``/healthz`` needs ``Authorization: Bearer <token>``. A token
belongs to one tenant and has a role: ``viewer`` reads, ``submitter`` also
submits and cancels, ``admin`` also lists sites. A tenant only ever sees its
own runs: another tenant's run is a 404, as if it did not exist.

An inference workload with ``replicas: N`` is submitted as a group of N runs
(``<name>-1`` .. ``<name>-N``, sharing ``group``); the submission answers with
the first and ``GET /v1/runs?group=<id>`` lists them all. Each replica is a run
of its own: placed under the workload's ``spread``, recovered and cancelled on
its own, and routed as one replica of the model.

``GET /v1/routes`` publishes, for the inference gateway, where the running
services can be reached: one entry per served model, one replica per running
run whose attempt listens on a port, in the gateway's own replica format. An
admin sees every tenant's services, anyone else only their tenant's. The answer
carries an ``ETag`` (a hash of the body): a poller that sends it back in
``If-None-Match`` gets a bodiless 304 while nothing changed.
"""

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from archipel.controlplane._quotas import Quotas, check_quota
from archipel.controlplane._reconcile import Reconciler
from archipel.controlplane._sites import Site
from archipel.controlplane._spread import Where, spread_problems
from archipel.controlplane._store import AttemptView, Principal, RunView, Store
from archipel.core import RunState, SpecError, Workload, WorkloadKind, parse_workload


class AttemptOut(BaseModel):
    id: str
    number: int
    site: str
    backend_id: str | None
    state: str
    exit_code: int | None
    reason: str | None
    created_at: datetime


class EventOut(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    event: str
    detail: str | None


class RunOut(BaseModel):
    id: str
    tenant: str
    name: str
    state: str
    site: str | None
    restarts: int
    max_restarts: int
    blocked_sites: list[str]
    message: str | None
    created_at: datetime
    updated_at: datetime
    group: str | None = None  # the replicas of one service share it
    attempts: list[AttemptOut] | None = None
    events: list[EventOut] | None = None


class LogsOut(BaseModel):
    attempt_id: str | None
    data: str
    next_offset: int
    state: str


class SiteOut(BaseModel):
    name: str
    backend: str
    provider: str
    region: str
    country: str | None
    accelerators: str
    slots: int
    healthy: bool
    reason: str | None


class ErrorOut(BaseModel):
    detail: Any


class PriceOut(BaseModel):
    """Per million tokens; amounts are decimal strings, never floats."""

    currency: str
    input_per_million: str
    output_per_million: str


class ReplicaOut(BaseModel):
    """One running service: a replica in the gateway's route table."""

    name: str  # the run id
    provider: str
    region: str
    country: str | None
    base_url: str  # http://<site address | observed host | 127.0.0.1>:<port><serve.path>
    max_concurrency: int
    weight: float
    pool: str = "primary"
    health_path: str
    price: PriceOut


class ModelRoutesOut(BaseModel):
    owned_by: str
    replicas: list[ReplicaOut]


class RoutesOut(BaseModel):
    """Served model name -> its replicas; models and replicas sorted by name."""

    models: dict[str, ModelRoutesOut]


def _decimal(value: Decimal) -> str:
    return format(value, "f")  # plain digits: never 1E+2


def _reach(site: Site, attempt: AttemptView) -> str | None:
    """The host part of a service's URL, or ``None`` while it is not known."""
    host = site.spec.address or attempt.host
    if host is None and site.spec.backend == "local":
        host = "127.0.0.1"
    if host is not None and ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return host


def routes(services: list[tuple[RunView, AttemptView]], sites: Mapping[str, Site]) -> RoutesOut:
    """The route table for these running services (see the module docstring).

    A service on a site no longer declared, or whose host is not known yet, is
    left out until it is. When several tenants serve one model name (an admin's
    view) their replicas are merged and ``owned_by`` is that of the replica
    first by name.
    """
    replicas: dict[str, list[tuple[ReplicaOut, str]]] = {}
    for run, attempt in services:
        serve = run.workload.serve
        site = sites.get(attempt.site)
        host = None if site is None else _reach(site, attempt)
        if serve is None or site is None or host is None or attempt.port is None:
            continue
        replica = ReplicaOut(
            name=run.id,
            provider=site.spec.provider,
            region=site.spec.region,
            country=site.spec.country,
            base_url=f"http://{host}:{attempt.port}{serve.path}",
            max_concurrency=serve.max_concurrency,
            weight=serve.weight,
            health_path=serve.health_path,
            price=PriceOut(
                currency=serve.price.currency,
                input_per_million=_decimal(serve.price.input_per_million),
                output_per_million=_decimal(serve.price.output_per_million),
            ),
        )
        replicas.setdefault(serve.model, []).append((replica, serve.owned_by or run.tenant))
    models = {}
    for model in sorted(replicas):
        ordered = sorted(replicas[model], key=lambda pair: pair[0].name)
        models[model] = ModelRoutesOut(
            owned_by=ordered[0][1], replicas=[replica for replica, _ in ordered]
        )
    return RoutesOut(models=models)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names this ETag (weak or strong) or is ``*``."""
    if if_none_match is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _out(store: Store, run: RunView, full: bool = False) -> RunOut:
    out = RunOut.model_validate(run, from_attributes=True)
    out.group = run.group_id
    if full:
        out.attempts = [
            AttemptOut.model_validate(a, from_attributes=True) for a in store.attempts(run.id)
        ]
        out.events = [
            EventOut.model_validate(e, from_attributes=True) for e in store.events(run.id)
        ]
    return out


def create_app(store: Store, reconciler: Reconciler, quotas: Quotas | None = None) -> FastAPI:
    """The API over one store and one reconciler (which owns the sites), under ``quotas``."""
    limits = quotas if quotas is not None else Quotas()
    app = FastAPI(
        title="Archipel control plane",
        version="1",
        description="Submit workloads, watch them run, read their logs, cancel them.",
    )

    async def principal(request: Request) -> Principal:
        # async: runs on the event loop, not in a worker thread (verified tokens are
        # cached by the store, so this rarely touches the database)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        who = store.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if who is None:
            raise HTTPException(
                401,
                "missing, unknown or revoked API token: send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return who

    Who = Annotated[Principal, Depends(principal)]  # noqa: N806 - a type alias

    def may_write(who: Principal) -> None:
        if who.role not in ("submitter", "admin"):
            raise HTTPException(
                403,
                f"role {who.role} may only read; submitting and "
                "cancelling need the submitter or admin role",
            )

    def own_run(run_id: str, who: Principal) -> RunView:
        run = store.get(run_id)
        if run is None or run.tenant != who.tenant:
            raise HTTPException(404, f"no run {run_id!r}")
        return run

    def spread_problems_for(workload: Workload) -> list[str]:
        """Why the declared sites could never spread this service's replicas as asked."""
        if workload.replicas == 1 or workload.spread is None:
            return []
        fitting = reconciler.placer.fitting(workload, list(reconciler.sites))
        where = [
            Where(reconciler.sites[n].spec.provider, reconciler.sites[n].spec.country)
            for n in fitting
        ]
        return spread_problems(workload.spread, workload.replicas, where)

    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/runs",
        status_code=201,
        response_model=RunOut,
        responses={
            **errors,
            403: {"model": ErrorOut},
            422: {"model": ErrorOut},
            429: {"model": ErrorOut, "description": "the tenant's quota is used up for now"},
        },
    )
    def submit(spec: dict[str, Any], who: Who) -> RunOut:
        """Submit a workload spec (the same document as a workload YAML file, as JSON)."""
        may_write(who)
        try:
            workload = parse_workload(spec, "workload")
        except SpecError as exc:
            raise HTTPException(422, exc.problems) from None
        if workload.run is None:
            raise HTTPException(
                422,
                [
                    "run.command: required to run a workload "
                    "(what to execute, e.g. [python, train.py])"
                ],
            )
        if workload.replicas > 1 and workload.kind is not WorkloadKind.INFERENCE:
            raise HTTPException(
                422,
                [
                    f"replicas: replicas applies to inference services, and this is a "
                    f"{workload.kind} workload asking for {workload.replicas}; submit it with "
                    "replicas: 1 (or once per copy, each with its own name)"
                ],
            )
        if workload.replicas > 1 and len(f"{workload.name}-{workload.replicas}") > 200:
            raise HTTPException(
                422, ["name: too long to name the replicas <name>-1 .. <name>-N (200 at most)"]
            )
        refused = check_quota(limits, store, who.tenant, workload)  # see _quotas.py
        if refused is not None:
            raise HTTPException(refused.status, [refused.rejection.message])
        choice = reconciler.placer.place(workload, list(reconciler.sites))
        if choice.site is None:  # no declared site will ever fit: say why now, not later
            reasons = (
                [choice.error]
                if choice.plan is None
                else [f"{r.reason.value}: {r.example}" for r in choice.plan.rejections]
            )
            raise HTTPException(
                422,
                [
                    f"no site can run this workload under data class `{workload.data.class_}`",
                    *[r for r in reasons if r],
                ],
            )
        spread = spread_problems_for(workload)
        if spread:
            raise HTTPException(422, spread)
        if workload.replicas > 1:
            return _out(store, store.submit_group(who.tenant, workload)[0])
        return _out(store, store.submit(who.tenant, workload))

    @app.get("/v1/runs", response_model=list[RunOut], responses=errors)
    def list_runs(
        who: Who,
        state: Annotated[list[RunState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
        group: Annotated[str | None, Query(max_length=40)] = None,
    ) -> list[RunOut]:
        """This tenant's runs, oldest first; with ``group``, the replicas of one service."""
        runs = store.runs(tenant=who.tenant, states=state or (), limit=limit, group=group)
        return [_out(store, r) for r in runs]

    @app.get("/v1/runs/{run_id}", response_model=RunOut, responses=errors)
    def get_run(run_id: str, who: Who) -> RunOut:
        """One run with its attempts and its whole history."""
        return _out(store, own_run(run_id, who), full=True)

    @app.get("/v1/runs/{run_id}/logs", response_model=LogsOut, responses=errors)
    def logs(run_id: str, who: Who, offset: Annotated[int, Query(ge=0)] = 0) -> LogsOut:
        """Output of the run's current attempt from ``offset`` (poll with ``next_offset``)."""
        run = own_run(run_id, who)
        if run.attempt_id is None or run.site not in reconciler.sites:
            return LogsOut(attempt_id=None, data="", next_offset=offset, state=run.state.value)
        chunk = reconciler.sites[run.site].backend.logs(run.attempt_id, offset)
        return LogsOut(
            attempt_id=run.attempt_id,
            data=chunk.data.decode("utf-8", "replace"),
            next_offset=chunk.next_offset,
            state=run.state.value,
        )

    @app.post(
        "/v1/runs/{run_id}/cancel",
        response_model=RunOut,
        responses={**errors, 403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def cancel(run_id: str, who: Who) -> RunOut:
        """Cancel a run (and its attempt on its site). Cancelling a finished run changes nothing."""
        may_write(who)
        run = own_run(run_id, who)
        for _ in range(5):
            done = reconciler.cancel(run)
            if done is not None:
                return _out(store, done, full=True)
            latest = store.get(run_id)
            assert latest is not None
            run = latest
        raise HTTPException(409, "the run kept changing; try again")

    @app.get("/v1/sites", response_model=list[SiteOut], responses=errors)
    def sites(who: Who) -> list[SiteOut]:
        """Declared sites, their mapping to provider/region/country, and their health."""
        out = []
        for site in reconciler.sites.values():
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

    @app.get(
        "/v1/routes",
        response_model=RoutesOut,
        responses={
            **errors,
            200: {"headers": {"ETag": {"description": "a hash of the body"}}},
            304: {"description": "Not modified: the routes still match `If-None-Match`"},
        },
    )
    def get_routes(
        who: Who, if_none_match: Annotated[str | None, Header(max_length=1000)] = None
    ) -> Response:
        """Where the running inference services are reached: the gateway's route table.

        Admins see every tenant's services, others their own tenant's. Send the
        ``ETag`` back in ``If-None-Match`` to get a 304 while nothing changed.
        """
        tenant = None if who.role == "admin" else who.tenant
        body = routes(store.services(tenant), reconciler.sites).model_dump_json().encode()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        if _matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    @app.exception_handler(ValueError)
    async def bad_value(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
