"""Simulations the console runs for a tenant's admin: a queue in the state store.

A simulation is a scenario (``archipel simulate SCENARIO.yaml``, study 3) with the
trace it replays, uploaded in the console, and later the document the command
prints with ``--json``. The store keeps them and their lifecycle; whoever runs
them (``archipel server`` composes one worker, :mod:`archipel.cli._simulations`)
claims the oldest queued one, and records how it ended. Claiming is one
conditional update, so two server replicas on one database never run the same
simulation.

A simulation belongs to its tenant, like a run: another tenant's is not found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from archipel.controlplane._models import SimulationRow


class SimulationState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (SimulationState.SUCCEEDED, SimulationState.FAILED)


Q, R, S, F = (
    SimulationState.QUEUED,
    SimulationState.RUNNING,
    SimulationState.SUCCEEDED,
    SimulationState.FAILED,
)
#: the allowed moves, each with the event that makes it
TRANSITIONS: dict[tuple[SimulationState, SimulationState], str] = {
    (Q, R): "a worker claimed it (the oldest queued first, one at a time per server)",
    (R, S): "the simulation ended; its result is recorded",
    (R, F): "bad input, an error, its time ran out, or its server stopped while it ran",
}


@dataclass(frozen=True, slots=True)
class SimulationView:
    """A simulation as the store holds it (``result`` parsed, ``None`` until it succeeds)."""

    id: str
    tenant: str
    name: str
    state: SimulationState
    scenario: str
    trace_name: str
    result: dict[str, Any] | None
    message: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SimulationInput:
    """What a worker needs to run one: the scenario's YAML and its trace."""

    id: str
    scenario: str
    trace_name: str
    trace: str


def _view(row: SimulationRow) -> SimulationView:
    return SimulationView(
        row.id,
        row.tenant,
        row.name,
        SimulationState(row.state),
        row.scenario,
        row.trace_name,
        None if row.result is None else json.loads(row.result),
        row.message,
        row.created_at,
        row.updated_at,
    )


class Simulations:
    """The simulations table: submitted, listed, claimed, ended."""

    def __init__(self, session: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def submit(self, tenant: str, name: str, scenario: str, trace_name: str, trace: str) -> str:
        """Queue a simulation; its id (``s-`` and 12 hex digits)."""
        at = self._clock()
        sim_id = f"s-{uuid.uuid4().hex[:12]}"
        with self._session.begin() as s:
            s.add(
                SimulationRow(
                    id=sim_id,
                    tenant=tenant,
                    name=name[:200],
                    state=SimulationState.QUEUED.value,
                    scenario=scenario,
                    trace_name=trace_name[:255],
                    trace=trace,
                    created_at=at,
                    updated_at=at,
                )
            )
        return sim_id

    def get(self, sim_id: str, tenant: str) -> SimulationView | None:
        """``tenant``'s simulation ``sim_id``; ``None`` if there is none (or another's)."""
        with self._session() as s:
            row = s.get(SimulationRow, sim_id)
            return None if row is None or row.tenant != tenant else _view(row)

    def list(self, tenant: str, limit: int = 100) -> list[SimulationView]:
        """``tenant``'s latest simulations, newest first (results left out: ``None``)."""
        kept = ("id", "tenant", "name", "scenario", "trace_name", "message", "created_at",
                "updated_at")  # fmt: skip
        query = (
            select(*(getattr(SimulationRow, k) for k in kept), SimulationRow.state)
            .where(SimulationRow.tenant == tenant)
            .order_by(SimulationRow.created_at.desc(), SimulationRow.id.desc())
            .limit(limit)
        )
        with self._session() as s:
            return [
                SimulationView(
                    **{k: r._mapping[k] for k in kept},
                    state=SimulationState(r.state),
                    result=None,
                )
                for r in s.execute(query)
            ]

    def unfinished(self, tenant: str) -> int:
        """How many of ``tenant``'s simulations are queued or running."""
        query = select(func.count()).where(
            SimulationRow.tenant == tenant,
            SimulationRow.state.in_([Q.value, R.value]),
        )
        with self._session() as s:
            return int(s.scalar(query) or 0)

    def claim(self) -> SimulationInput | None:
        """The oldest queued simulation, now ``running`` for this caller; ``None`` if none
        is queued (or another worker claimed each one first)."""
        while True:
            with self._session() as s:
                row = s.scalars(
                    select(SimulationRow)
                    .where(SimulationRow.state == Q.value)
                    .order_by(SimulationRow.created_at, SimulationRow.id)
                    .limit(1)
                ).first()
                if row is None:
                    return None
                found = SimulationInput(row.id, row.scenario, row.trace_name, row.trace)
            if self._move(found.id, Q, R):
                return found

    def succeed(self, sim_id: str, result: dict[str, Any]) -> bool:
        return self._move(sim_id, R, S, result=json.dumps(result))

    def fail(self, sim_id: str, message: str) -> bool:
        return self._move(sim_id, R, F, message=message)

    def abandon(self, older_than: timedelta, message: str) -> int:
        """Fail every simulation left ``running`` for longer than ``older_than``: no worker
        runs one that long, so its server stopped while it ran. How many were."""
        since = self._clock() - older_than
        with self._session.begin() as s:
            done = s.execute(
                update(SimulationRow)
                .where(SimulationRow.state == R.value, SimulationRow.updated_at < since)
                .values(state=F.value, message=message, updated_at=self._clock())
            )
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    def _move(self, sim_id: str, old: SimulationState, new: SimulationState, **values: Any) -> bool:
        """Move ``sim_id`` from ``old`` to ``new`` if it is still ``old`` (one update)."""
        if (old, new) not in TRANSITIONS:
            raise ValueError(f"a simulation does not go from {old} to {new}")
        with self._session.begin() as s:
            done = s.execute(
                update(SimulationRow)
                .where(SimulationRow.id == sim_id, SimulationRow.state == old.value)
                .values(state=new.value, updated_at=self._clock(), **values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]
