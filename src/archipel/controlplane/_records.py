"""What the state store hands out and takes in: frozen records, never live ORM rows.

The store's callers (the reconciler, the API, the submission use case) see runs,
attempts and history entries as these values; only :mod:`archipel.controlplane._store`
and its helpers touch the tables of :mod:`archipel.controlplane._models`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from archipel.backends import AttemptState, Observation
from archipel.controlplane._models import AttemptRow, EventRow, RunRow
from archipel.core import RunState, Workload


def now() -> datetime:
    """The time as the store keeps it: naive, in UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


#: one observation of an attempt to record (``None`` keeps what was recorded): what the
#: store records of an attempt is what a backend observes of it, field for field
AttemptUpdate = Observation


@dataclass(frozen=True, slots=True)
class AttemptTerms:
    """What an attempt's placement offered and at what price, fixed when it was placed.

    One slot of its site: ``gpus`` accelerators of model ``accelerator`` (0 GPUs
    for a CPU slot) at ``price_per_hour`` (exact) in ``currency``, from
    ``provider`` in ``region`` of ``country``.
    """

    provider: str
    region: str
    country: str | None
    accelerator: str
    gpus: Decimal
    price_per_hour: Decimal
    currency: str

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "provider": self.provider,
            "region": self.region,
            "country": self.country,
            "accelerator": self.accelerator,
            "gpus": str(self.gpus),
            "price_per_hour": str(self.price_per_hour),  # a string: exact, never a float
            "currency": self.currency,
        }
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AttemptTerms:
        doc = json.loads(text)
        return cls(
            provider=doc["provider"],
            region=doc["region"],
            country=doc["country"],
            accelerator=doc["accelerator"],
            gpus=Decimal(str(doc["gpus"])),
            price_per_hour=Decimal(doc["price_per_hour"]),
            currency=doc["currency"],
        )


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """An attempt to record with a run's launch: its id, its number (1, 2, ...) and site.

    The number is carried here, and stored, rather than read back out of the id.
    ``terms`` are the priced terms of the placement, kept with the attempt so that
    its end is priced as it was placed, whatever the sites file says by then.
    """

    id: str
    number: int
    site: str
    terms: AttemptTerms | None = None


@dataclass(frozen=True, slots=True)
class AttemptEnding:
    """An ended attempt waiting in the outbox to be metered.

    ``started`` is when the attempt was recorded (placed, before its backend was
    called) and ``ended`` when its end was recorded (the reconcile round that saw
    it end), both naive UTC as the store keeps times. ``terms`` is ``None`` for
    an attempt placed before the terms were recorded.
    """

    attempt_id: str
    run_id: str
    tenant: str
    name: str
    spec: str  # the run's workload as JSON
    site: str
    state: AttemptState
    started: datetime
    ended: datetime
    terms: AttemptTerms | None

    @property
    def workload(self) -> Workload:
        return Workload.model_validate_json(self.spec)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and a role."""

    tenant: str
    role: str
    token_id: str


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as read from the store."""

    id: str
    tenant: str
    name: str
    spec: str  # the workload as JSON; parsed on demand by :attr:`workload`
    state: RunState
    version: int
    restarts: int
    max_restarts: int
    blocked_sites: tuple[str, ...]
    site: str | None
    attempt_id: str | None
    message: str | None
    created_at: datetime
    updated_at: datetime
    group_id: str | None = None  # the replicas of one service share it
    service_key: str | None = field(default=None, repr=False)  # a service's credential

    @property
    def workload(self) -> Workload:
        """The submitted workload (validated when it was submitted)."""
        if len(self.spec) > _CACHED_SPEC_CHARS:
            return Workload.model_validate_json(self.spec)
        return _parsed(self.spec)


#: specs up to this long are parsed once and kept (the cache holds at most ~16 MiB of them)
_CACHED_SPEC_CHARS = 16 << 10


@functools.lru_cache(maxsize=1024)
def _parsed(spec: str) -> Workload:
    """A stored spec, parsed once while it is in use: a round reads a run's workload
    several times (placement, launch, serving), and every replica of a service shares
    one spec. A Workload is immutable, so one parse may serve them all."""
    return Workload.model_validate_json(spec)


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt; ``port`` and ``host`` say where a service's attempt listens."""

    id: str
    run_id: str
    number: int
    site: str
    backend_id: str | None
    state: AttemptState
    exit_code: int | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    port: int | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    run_id: str
    at: datetime
    from_state: str | None
    to_state: str
    event: str
    detail: str | None


def run_view(row: RunRow) -> RunView:
    return RunView(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        spec=row.spec,
        state=RunState(row.state),
        version=row.version,
        restarts=row.restarts,
        max_restarts=row.max_restarts,
        blocked_sites=tuple(json.loads(row.blocked_sites)),
        site=row.site,
        attempt_id=row.attempt_id,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        group_id=row.group_id,
        service_key=row.service_key,
    )


#: attempt states recorded by earlier versions, read as today's
_LEGACY_ATTEMPT_STATES = {"launched": AttemptState.PENDING}


def attempt_view(row: AttemptRow) -> AttemptView:
    state = _LEGACY_ATTEMPT_STATES.get(row.state) or AttemptState(row.state)
    return AttemptView(
        row.id,
        row.run_id,
        row.number,
        row.site,
        row.backend_id,
        state,
        row.exit_code,
        row.reason,
        row.created_at,
        row.updated_at,
        row.port,
        row.host,
    )


def event_view(row: EventRow) -> EventView:
    return EventView(
        row.id, row.run_id, row.at, row.from_state, row.to_state, row.event, row.detail
    )
