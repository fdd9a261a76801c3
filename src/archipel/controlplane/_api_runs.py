"""``/v1/runs`` and ``/v1/workdirs``: submit, upload a workdir, list, read, follow, cancel.

The handlers translate HTTP to the control plane's calls and back, no more:
submitting is :func:`archipel.controlplane._submit.submit`, cancelling is
:meth:`Reconciler.cancel`.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from archipel.controlplane._api_deps import Ctx, RunId, Who, Writer
from archipel.controlplane._schemas import (
    ERRORS,
    FORBIDDEN,
    NOT_FOUND,
    SLOW,
    ErrorOut,
    LogsOut,
    Responses,
    RunOut,
    Submission,
    run_out,
)
from archipel.controlplane._submit import submit as submit_workload
from archipel.controlplane._workdirs import WorkdirQuotaError, upload_problem
from archipel.core import RunState

router = APIRouter()

QUOTA: Responses = {
    429: {"model": ErrorOut, "description": "the tenant's quota is used up for now"}
}


@router.post(
    "/v1/runs",
    status_code=201,
    response_model=RunOut,
    responses={
        **ERRORS,
        **FORBIDDEN,
        **SLOW,
        **QUOTA,
    },
)
def submit(workload: Submission, who: Writer, ctx: Ctx) -> RunOut:
    """Submit a workload spec (the same document as a workload YAML file, as JSON)."""
    reconciler = ctx.reconciler
    runs = submit_workload(
        ctx.store,
        reconciler.placer,
        workload,
        who,
        quotas=ctx.quotas,
        workdirs=reconciler.workdirs,
    )
    return run_out(ctx.store, runs[0])


@router.put(
    "/v1/workdirs/{sha256}",
    status_code=204,
    responses={**ERRORS, **FORBIDDEN, **SLOW, **QUOTA},
)
async def upload_workdir(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], request: Request, who: Writer, ctx: Ctx
) -> Response:
    """Upload a workdir: a ``.tar.gz`` whose SHA-256 is ``sha256``, then submit a run
    with ``run.workdir_sha256`` naming it. Its attempts start in a copy of it. The body
    may be as large as the server's ``--max-workdir`` (64 MiB by default), and the
    tenant's kept archives may take ``--max-workdir-total`` bytes (1 GiB; 429 past it)."""
    body = await request.body()
    # hashing, unpacking to check and writing up to --max-workdir bytes: off the event loop,
    # which meanwhile serves everyone else's requests
    problem = await run_in_threadpool(upload_problem, sha256, body)
    if problem is not None:
        raise HTTPException(422, [f"(document): {problem}"])
    try:
        await run_in_threadpool(ctx.reconciler.workdirs.save, who.tenant, sha256, body)
    except WorkdirQuotaError as exc:
        raise HTTPException(429, [str(exc)]) from None
    return Response(status_code=204)


@router.get("/v1/runs", response_model=list[RunOut], responses=ERRORS)
def list_runs(
    who: Who,
    ctx: Ctx,
    state: Annotated[list[RunState] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    group: Annotated[str | None, Query(max_length=40)] = None,
) -> list[RunOut]:
    """This tenant's runs, oldest first; with ``group``, the replicas of one service."""
    runs = ctx.store.runs(tenant=who.tenant, states=state or (), limit=limit, group=group)
    return [run_out(ctx.store, r) for r in runs]


@router.get("/v1/runs/{run_id}", response_model=RunOut, responses={**ERRORS, **NOT_FOUND})
def get_run(run_id: RunId, who: Who, ctx: Ctx) -> RunOut:
    """One run with its attempts and its whole history."""
    return run_out(ctx.store, ctx.own_run(run_id, who), full=True)


@router.get("/v1/runs/{run_id}/logs", response_model=LogsOut, responses={**ERRORS, **NOT_FOUND})
def logs(run_id: RunId, who: Who, ctx: Ctx, offset: Annotated[int, Query(ge=0)] = 0) -> LogsOut:
    """Output of the run's current attempt from ``offset`` (poll with ``next_offset``)."""
    run = ctx.own_run(run_id, who)
    sites = ctx.reconciler.sites
    if run.attempt_id is None or run.site not in sites:
        return LogsOut(attempt_id=None, data="", next_offset=offset, state=run.state.value)
    chunk = sites[run.site].backend.logs(run.attempt_id, offset)
    return LogsOut(
        attempt_id=run.attempt_id,
        data=chunk.data.decode("utf-8", "replace"),
        next_offset=chunk.next_offset,
        state=run.state.value,
    )


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunOut,
    responses={**ERRORS, **NOT_FOUND, **FORBIDDEN, 409: {"model": ErrorOut}},
)
def cancel(run_id: RunId, who: Writer, ctx: Ctx) -> RunOut:
    """Cancel a run (and its attempt on its site). Cancelling a finished run changes nothing."""
    done = ctx.reconciler.cancel_latest(ctx.own_run(run_id, who))
    if done is None:
        raise HTTPException(409, "the run kept changing; try again")
    return run_out(ctx.store, done, full=True)
