"""The state store's tables (SQLAlchemy 2.0). Schema changes go through Alembic
migrations in ``migrations/``; a test checks that they match these models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class TokenRow(Base):
    """An API token: only its SHA-256 is stored; ``id`` is the public prefix."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class RunRow(Base):
    """A submitted workload and where it is in its lifecycle.

    ``version`` is the optimistic-concurrency counter: every update checks it,
    so two control planes cannot both move the same run. ``group_id`` links the
    replicas of one inference service submitted with ``replicas: N`` (``None``
    for a run of its own). ``service_key`` is the credential issued to one
    service (every replica of a group shares it): its attempts get it as
    ``ARCHIPEL_SERVICE_KEY`` and the routes give it to the tokens entitled to
    call the service; ``None`` for a run that serves nothing.
    """

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[str] = mapped_column(Text)  # the workload as JSON
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    max_restarts: Mapped[int] = mapped_column(Integer)
    blocked_sites: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    site: Mapped[str | None] = mapped_column(String(100))
    attempt_id: Mapped[str | None] = mapped_column(String(60))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    group_id: Mapped[str | None] = mapped_column(String(40))
    service_key: Mapped[str | None] = mapped_column(String(64))
    data_class: Mapped[str | None] = mapped_column(String(100))  # the spec's, as written

    __table_args__ = (
        Index("ix_runs_state", "state"),
        Index("ix_runs_tenant", "tenant"),
        Index("ix_runs_group_id", "group_id"),
        # a tenant's runs page by page (the console), newest or oldest first, by state too
        Index("ix_runs_tenant_created", "tenant", "created_at"),
        Index("ix_runs_tenant_state_created", "tenant", "state", "created_at"),
    )


class AttemptRow(Base):
    """One try at running a run on one site.

    A service's attempt records the ``port`` it was told to listen on (chosen
    at launch) and the ``host`` its backend reported it running on. ``terms``
    are the priced terms of its placement, as JSON (:class:`AttemptTerms`):
    what its site offered and at what hourly price, fixed when it was placed.
    """

    __tablename__ = "attempts"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(100))
    backend_id: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    port: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    terms: Mapped[str | None] = mapped_column(Text)


class AttemptEndingRow(Base):
    """The outbox of ended attempts: one row per attempt, written in the same
    transaction as the attempt's end, read and removed by whoever meters them
    (the ledger, composed by ``archipel server``). A crash between the end and the
    metering loses nothing: the row waits in this table."""

    __tablename__ = "attempt_endings"

    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempts.id"), primary_key=True)
    ended_at: Mapped[datetime]


class EventRow(Base):
    """The append-only history of a run: every transition and decision."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)


class SimulationRow(Base):
    """A scenario a tenant's admin gave the console to simulate, and its result.

    ``scenario`` is the YAML as uploaded and ``trace`` the openb trace it replays
    (the upload stands for the file the scenario names); ``result`` is the document
    ``archipel simulate SCENARIO.yaml --json`` prints, once ``state`` is
    ``succeeded``; ``message`` says why a ``failed`` one failed. See
    :mod:`archipel.controlplane._simulations` for the states and who moves them.
    """

    __tablename__ = "simulations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    scenario: Mapped[str] = mapped_column(Text)
    trace_name: Mapped[str] = mapped_column(String(255))
    trace: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # a tenant's simulations, newest first (the console's list)
        Index("ix_simulations_tenant_created", "tenant", "created_at"),
        # the worker's queue: the oldest queued first
        Index("ix_simulations_state_created", "state", "created_at"),
    )
