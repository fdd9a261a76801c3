"""The HTTP API's documents: what it reads and answers, as the OpenAPI description names them.

Class names are the schema names of ``/openapi.json``: renaming one changes the API's
description.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel

from archipel.controlplane._records import RunView
from archipel.controlplane._store import Store
from archipel.core import RunSpec, Workload


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


def run_out(store: Store, run: RunView, full: bool = False) -> RunOut:
    """A run as answered; ``full`` adds its attempts and its whole history."""
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


#: the refusals every call may get, for the OpenAPI description
Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    400: {"model": ErrorOut, "description": "Not an HTTP request this API can read"},
    401: {"model": ErrorOut, "description": "No valid token"},
    413: {"model": ErrorOut, "description": "The request body is too large"},
    422: {"model": ProblemsOut, "description": "Bad input: each problem names its field"},
}
NOT_FOUND: Responses = {404: {"model": ErrorOut}}
FORBIDDEN: Responses = {403: {"model": ErrorOut}}
SLOW: Responses = {408: {"model": ErrorOut}}
