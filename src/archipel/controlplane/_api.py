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
"""

import hashlib
import io
import json
import secrets
import tarfile
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from archipel.controlplane._http import UNAUTHENTICATED, Guard, Limits
from archipel.controlplane._quotas import Quotas, check_quota
from archipel.controlplane._reconcile import Reconciler
from archipel.controlplane._sites import Site
from archipel.controlplane._spread import Where, spread_problems
from archipel.controlplane._store import AttemptView, Principal, RunView, Store
from archipel.core import RunSpec, RunState, Workload, WorkloadKind, field_problem


class Submission(Workload):
    """A workload to run: the workload document, whose ``run`` section is required here."""

    run: RunSpec


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: a time as the store keeps it (naive, in UTC), answered with its zone: RFC 3339
Utc = Annotated[datetime, AfterValidator(_utc)]


class AttemptOut(BaseModel):
    id: str
    number: int
    site: str
    backend_id: str | None
    state: str
    exit_code: int | None
    reason: str | None
    created_at: Utc


class EventOut(BaseModel):
    at: Utc
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
    created_at: Utc
    updated_at: Utc
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
    """A refusal: what is wrong and what to do instead."""

    detail: str


class ProblemsOut(BaseModel):
    """A 422: one ``<field path>: <what to change>`` line per problem."""

    detail: list[str]


class _Json(JSONResponse):
    """JSON in ASCII: an error that quotes the input renders whatever that input was."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode()


class PriceOut(BaseModel):
    """Per million tokens; amounts are decimal strings, never floats."""

    currency: str
    input_per_million: str
    output_per_million: str


class ReplicaOut(BaseModel):
    """One running service: a replica in the gateway's route table."""

    name: str  # the run id
    tenant: str  # the tenant that runs it (its owner)
    key: str | None  # the service's own credential (Authorization: Bearer <key>)
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

    tenant: str  # the caller's tenant: its own services are those it names as owner
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


def routes(
    services: list[tuple[RunView, AttemptView]], sites: Mapping[str, Site], tenant: str
) -> RoutesOut:
    """The route table of these running services, as ``tenant`` sees it (see the module
    docstring; the caller picks the services ``tenant`` may see).

    A service on a site no longer declared, or whose host is not known yet, is
    left out until it is. When several tenants serve one model name (a service
    published to ``tenant`` beside its own) their replicas are merged, each
    naming its owner, and ``owned_by`` is that of the replica first by name.
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
            tenant=run.tenant,
            key=run.service_key,
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
    return RoutesOut(tenant=tenant, models=models)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names this ETag (weak or strong) or is ``*``."""
    if if_none_match is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def archive_problem(body: bytes, max_unpacked: int) -> str | None:
    """Why a workdir archive is refused, or ``None``: it must be a ``.tar.gz`` of files
    and folders that stay inside the folder it is unpacked into, and unpack to at most
    ``max_unpacked`` bytes."""
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            for member in tar:
                try:
                    if member.name.startswith("/"):
                        raise tarfile.AbsolutePathError(member)
                    tarfile.data_filter(member, "/w")
                except tarfile.FilterError as exc:
                    return f"the archive holds {member.name!r}, which is refused: {exc}"
                total += member.size
                if total > max_unpacked:
                    return f"the archive unpacks to more than {max_unpacked} bytes"
    except (tarfile.TarError, EOFError, OSError) as exc:
        return f"not a .tar.gz archive: {exc}"
    return None


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


def create_app(
    store: Store,
    reconciler: Reconciler,
    *,
    limits: Limits | None = None,
    quotas: Quotas | None = None,
) -> FastAPI:
    """The API over one store and one reconciler (which owns the sites), under ``quotas``."""
    quota = quotas if quotas is not None else Quotas()
    app = FastAPI(
        title="Archipel control plane",
        version="1",
        description="Submit workloads, watch them run, read their logs, cancel them.",
        # FastAPI's /docs and /redoc pages load their scripts from a CDN, so they are blank
        # offline: the API is described by /openapi.json alone
        docs_url=None,
        redoc_url=None,
    )
    public = {"/healthz", "/openapi.json"}
    # the token is checked there, from the headers alone (async: on the event loop;
    # verified tokens are cached by the store, so this rarely touches the database)
    app.add_middleware(
        Guard, authenticate=store.authenticate, public=public, limits=limits or Limits()
    )

    # the dependencies are async: they run on the event loop, not in a worker thread
    async def principal(request: Request) -> Principal:
        who: Principal | None = getattr(request.state, "principal", None)
        if who is None:  # not reached: the guard refuses such a request first
            raise HTTPException(401, UNAUTHENTICATED, headers={"WWW-Authenticate": "Bearer"})
        return who

    def may(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
        async def checked(who: Annotated[Principal, Depends(principal)]) -> Principal:
            if who.role not in roles:
                raise HTTPException(
                    403, f"role {who.role} may not do this; it needs the {' or '.join(roles)} role"
                )
            return who

        return checked

    Who = Annotated[Principal, Depends(principal)]  # noqa: N806 - type aliases
    Writer = Annotated[Principal, Depends(may("submitter", "admin"))]  # noqa: N806
    Admin = Annotated[Principal, Depends(may("admin"))]  # noqa: N806
    RunId = Annotated[str, Path(max_length=40)]  # noqa: N806 - as stored

    def may_publish(workload: Workload, who: Principal) -> None:
        others = (
            []
            if workload.serve is None
            else [t for t in workload.serve.publish_to if t != who.tenant]
        )
        if others and who.role != "admin":
            raise HTTPException(
                403,
                f"serve.publish_to: publishing a service to another tenant "
                f"({', '.join(others)}) needs the admin role of tenant {who.tenant}; "
                "drop publish_to, or submit with an admin token",
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

    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut, "description": "Not an HTTP request this API can read"},
        401: {"model": ErrorOut, "description": "No valid token"},
        413: {"model": ErrorOut, "description": "The request body is too large"},
        422: {"model": ProblemsOut, "description": "Bad input: each problem names its field"},
    }
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
    forbidden: dict[int | str, dict[str, Any]] = {403: {"model": ErrorOut}}
    slow: dict[int | str, dict[str, Any]] = {408: {"model": ErrorOut}}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/runs",
        status_code=201,
        response_model=RunOut,
        responses={
            **errors,
            **forbidden,
            **slow,
            429: {"model": ErrorOut, "description": "the tenant's quota is used up for now"},
        },
    )
    def submit(workload: Submission, who: Writer) -> RunOut:
        """Submit a workload spec (the same document as a workload YAML file, as JSON)."""
        may_publish(workload, who)
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
        if (
            workload.run.workdir_sha256 is not None
            and not reconciler.workdir(who.tenant, workload.run).is_file()
        ):
            raise HTTPException(
                422,
                [
                    "run.workdir_sha256: no workdir with this SHA-256 was uploaded by this "
                    "tenant; upload it first (PUT /v1/workdirs/{sha256}), as `archipel run` does"
                ],
            )
        refused = check_quota(quota, store, who.tenant, workload)  # see _quotas.py
        if refused is not None:
            raise HTTPException(refused.status, [refused.rejection.message])
        choice = reconciler.placer.place(workload)
        if choice.site is None:  # no declared site will ever fit: say why now, not later
            reasons = (
                [choice.explain()]
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

    @app.put(
        "/v1/workdirs/{sha256}",
        status_code=204,
        responses={**errors, **forbidden, **slow},
    )
    async def upload_workdir(
        sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], request: Request, who: Writer
    ) -> Response:
        """Upload a workdir: a ``.tar.gz`` whose SHA-256 is ``sha256``, then submit a run
        with ``run.workdir_sha256`` naming it. Its attempts start in a copy of it. The body
        may be as large as the server's ``--max-workdir`` (64 MiB by default)."""
        body = await request.body()
        if hashlib.sha256(body).hexdigest() != sha256:
            raise HTTPException(422, ["(document): the body's SHA-256 is not the one in the path"])
        problem = archive_problem(body, 8 * max(1, len(body)) + (64 << 20))
        if problem is not None:
            raise HTTPException(422, [f"(document): {problem}"])
        target = reconciler.workdirs / who.tenant / f"{sha256}.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
        return Response(status_code=204)

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

    @app.get("/v1/runs/{run_id}", response_model=RunOut, responses={**errors, **not_found})
    def get_run(run_id: RunId, who: Who) -> RunOut:
        """One run with its attempts and its whole history."""
        return _out(store, own_run(run_id, who), full=True)

    @app.get("/v1/runs/{run_id}/logs", response_model=LogsOut, responses={**errors, **not_found})
    def logs(run_id: RunId, who: Who, offset: Annotated[int, Query(ge=0)] = 0) -> LogsOut:
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
        responses={**errors, **not_found, **forbidden, 409: {"model": ErrorOut}},
    )
    def cancel(run_id: RunId, who: Writer) -> RunOut:
        """Cancel a run (and its attempt on its site). Cancelling a finished run changes nothing."""
        run = own_run(run_id, who)
        for _ in range(5):
            done = reconciler.cancel(run)
            if done is not None:
                return _out(store, done, full=True)
            latest = store.get(run_id)
            assert latest is not None
            run = latest
        raise HTTPException(409, "the run kept changing; try again")

    @app.get("/v1/sites", response_model=list[SiteOut], responses={**errors, **forbidden})
    def sites(_admin: Admin) -> list[SiteOut]:
        """Declared sites, their mapping to provider/region/country, and their health (admins)."""
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

        Every role sees its tenant's own services and those published to its
        tenant, never another tenant's. Send the ``ETag`` back in
        ``If-None-Match`` to get a 304 while nothing changed.
        """
        services = store.services(who.tenant)
        body = routes(services, reconciler.sites, who.tenant).model_dump_json().encode()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        if _matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    @app.exception_handler(RequestValidationError)
    async def bad_input(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _Json({"detail": _problems(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def refused(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _Json({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ValueError)
    async def bad_value(_request: Request, exc: ValueError) -> JSONResponse:
        return _Json({"detail": [f"(document): {exc}"]}, status_code=422)

    return app
