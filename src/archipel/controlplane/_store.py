"""The state store: runs, attempts, their history, and API tokens, behind SQLAlchemy.

SQLite (a file in the user's data directory) by default, PostgreSQL for
production and several control-plane replicas. A SQLite file is private to
the server's user (mode 0600, and SQLite gives its journal files the same
mode); one found readable by others is tightened, with a warning. Every change of a run's state
is one transaction that checks the run's ``version`` (optimistic
concurrency): when two replicas race, exactly one wins and the other is told
so (``None``) and moves on. The history table is only ever appended to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from archipel.backends import AttemptState
from archipel.controlplane._models import AttemptRow, EventRow, RunRow, TokenRow
from archipel.core import InputError, RunState, Workload, check_transition

ROLES = ("admin", "submitter", "viewer")

log = logging.getLogger("archipel.store")


#: a tenant's name: a slug that fits the tenant columns (100 characters)
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True, slots=True)
class AttemptUpdate:
    """One observation of an attempt to record; ``None`` keeps what was recorded."""

    attempt_id: str
    state: AttemptState
    backend_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """An attempt to record with a run's launch: its id, its number (1, 2, ...) and site."""

    id: str
    number: int
    site: str


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
        return Workload.model_validate_json(self.spec)


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


def _run(row: RunRow) -> RunView:
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


def _attempt(row: AttemptRow) -> AttemptView:
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


class Store:
    """Typed access to the control plane's tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            _private_sqlite_file(make_url(url).database)
        else:
            # as many pooled connections as request threads: an overflow connection is
            # closed on return, and opening one costs PostgreSQL a new backend process
            kwargs.update(pool_size=32, max_overflow=8, pool_recycle=1800)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.token_cache_seconds = 5.0
        self._token_cache: dict[str, tuple[Principal, float]] = {}

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic ``upgrade head``); safe to run every start."""
        config = Config()
        config.set_main_option(
            "script_location", str(resources.files("archipel.controlplane") / "migrations")
        )
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    # -- tokens ----------------------------------------------------------------

    def create_token(self, tenant: str, role: str) -> str:
        """A new API token for ``tenant`` with ``role``; the secret is shown once.

        A token is where a tenant comes into being, so its name is checked here:
        letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if TENANT_NAME.fullmatch(tenant) is None:
            raise InputError(
                f"{tenant!r:.60} is not a tenant name: use 1 to 100 letters, digits, '.', '_' "
                "or '-', starting with a letter or a digit (e.g. acme)"
            )
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self._session.begin() as s:
            s.add(
                TokenRow(
                    id=token_id,
                    tenant=tenant,
                    role=role,
                    secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
                    created_at=_now(),
                    revoked_at=None,
                )
            )
        return f"arch_{token_id}_{secret}"

    def authenticate(self, token: str) -> Principal | None:
        """The principal behind a bearer token, or ``None`` (unknown, malformed or revoked).

        A verified token is remembered for :attr:`token_cache_seconds` (default 5 s)
        so that a busy client does not cost a database read per request; a
        revocation by another process (``archipel token revoke``, another
        replica) therefore takes effect within that time, one by this store at
        once. With 0, every call reads the database.
        """
        digest_key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._token_cache.get(digest_key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        principal = self._authenticate(token)
        if principal is not None:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[digest_key] = (principal, time.monotonic() + self.token_cache_seconds)
        return principal

    def _authenticate(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "arch":
            return None
        with self._session() as s:
            row = s.get(TokenRow, parts[1])
            if row is None or row.revoked_at is not None:
                return None
            digest = hashlib.sha256(parts[2].encode()).hexdigest()
            if not hmac.compare_digest(digest, row.secret_sha256):
                return None
            return Principal(row.tenant, row.role, row.id)

    def revoke_token(self, token_id: str) -> bool:
        self._token_cache = {
            k: v for k, v in self._token_cache.items() if v[0].token_id != token_id
        }
        with self._session.begin() as s:
            row = s.get(TokenRow, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = _now()
            return True

    # -- runs ------------------------------------------------------------------

    def submit(self, tenant: str, workload: Workload) -> RunView:
        """Record a new run, ``pending``, with its first history entry (one transaction)."""
        return self._insert(tenant, workload, [workload.name], None)[0]

    def submit_group(self, tenant: str, workload: Workload) -> list[RunView]:
        """Record one run per replica of a service, linked by a new group id (one transaction).

        The runs are named ``<name>-1`` .. ``<name>-N``; each stores the submitted
        workload unchanged (``replicas`` and ``spread`` included: the reconciler
        reads them to spread the group) and is one replica of it.
        """
        names = [f"{workload.name}-{i}" for i in range(1, workload.replicas + 1)]
        return self._insert(tenant, workload, names, f"g-{uuid.uuid4().hex[:12]}")

    def _insert(
        self, tenant: str, workload: Workload, names: Sequence[str], group_id: str | None
    ) -> list[RunView]:
        max_restarts = workload.run.max_restarts if workload.run is not None else 0
        now = _now()
        spec = workload.model_dump_json(by_alias=True)
        # one credential per service, shared by its replicas: its attempts check it, and only
        # the tokens entitled to the service's routes read it
        key = secrets.token_urlsafe(32) if workload.serve is not None else None
        runs = [
            dict(
                id=f"r-{uuid.uuid4().hex[:12]}",
                tenant=tenant,
                name=name,
                spec=spec,
                state=RunState.PENDING.value,
                version=1,
                restarts=0,
                max_restarts=max_restarts,
                blocked_sites="[]",
                site=None,
                attempt_id=None,
                message=None,
                created_at=now,
                updated_at=now,
                group_id=group_id,
                service_key=key,
            )
            for name in names
        ]
        views = [_run(RunRow(**r)) for r in runs]  # transient rows: never added to a session
        events = [
            dict(
                run_id=v.id,
                at=now,
                from_state=None,
                to_state="pending",
                event="submitted",
                detail=None if group_id is None else f"replica of group {group_id}",
            )
            for v in views
        ]
        with self.engine.begin() as c:  # Core inserts: the hot path of the API
            c.execute(insert(RunRow), runs)
            c.execute(insert(EventRow), events)
        return views

    def get(self, run_id: str) -> RunView | None:
        with self._session() as s:
            row = s.get(RunRow, run_id)
            return None if row is None else _run(row)

    def runs(
        self,
        tenant: str | None = None,
        states: Sequence[RunState] = (),
        limit: int = 1000,
        group: str | None = None,
    ) -> list[RunView]:
        """Runs oldest first; the replicas of a group (submitted together) in replica order."""
        with self._session() as s:
            order = (RunRow.created_at, func.length(RunRow.name), RunRow.name, RunRow.id)
            q = select(RunRow).order_by(*order).limit(limit)
            if tenant is not None:
                q = q.where(RunRow.tenant == tenant)
            if group is not None:
                q = q.where(RunRow.group_id == group)
            if states:
                q = q.where(RunRow.state.in_([st.value for st in states]))
            return [_run(r) for r in s.scalars(q)]

    def queued(self, states: Sequence[RunState], per_tenant: int) -> dict[str, list[RunView]]:
        """Each tenant's oldest ``per_tenant`` runs in ``states``, in the order of :meth:`runs`.

        One query (a window function, on SQLite and PostgreSQL alike): however many
        runs a tenant has waiting, at most ``per_tenant`` of them are read.
        """
        order = (RunRow.created_at, func.length(RunRow.name), RunRow.name, RunRow.id)
        rank = func.row_number().over(partition_by=RunRow.tenant, order_by=order).label("rank")
        ranked = (
            select(RunRow.id, rank).where(RunRow.state.in_([st.value for st in states])).subquery()
        )
        q = (
            select(RunRow)
            .join(ranked, ranked.c.id == RunRow.id)
            .where(ranked.c.rank <= per_tenant)
            .order_by(RunRow.tenant, ranked.c.rank)
        )
        out: dict[str, list[RunView]] = {}
        with self._session() as s:
            for row in s.scalars(q):
                out.setdefault(row.tenant, []).append(_run(row))
        return out

    def unfinished(self, tenant: str) -> list[tuple[str, int]]:
        """The tenant's runs not finished yet, as (spec, how many runs have it)."""
        finished = [st.value for st in RunState if st.terminal]
        with self._session() as s:
            q = (
                select(RunRow.spec, func.count())
                .where(RunRow.tenant == tenant, RunRow.state.not_in(finished))
                .group_by(RunRow.spec)
            )
            return [(spec, int(n)) for spec, n in s.execute(q)]

    def count(self, states: Sequence[RunState] = (), tenant: str | None = None) -> int:
        with self._session() as s:
            q = select(func.count()).select_from(RunRow)
            if tenant is not None:
                q = q.where(RunRow.tenant == tenant)
            if states:
                q = q.where(RunRow.state.in_([st.value for st in states]))
            return int(s.scalar(q) or 0)

    def transition(
        self,
        run: RunView,
        target: RunState,
        detail: str | None = None,
        *,
        attempt: NewAttempt | None = None,  # the attempt to record with LAUNCHING
        port: int | None = None,  # the port a service's attempt listens on, recorded with it
        **fields: Any,
    ) -> RunView | None:
        """Move ``run`` to ``target`` if nobody moved it since it was read.

        Checks the lifecycle table, bumps the version, appends the history
        entry and (for a launch) records the attempt, all in one transaction.
        Returns the new view, or ``None`` when another writer got there first.
        """
        event_text = check_transition(run.state, target)
        now = _now()
        values: dict[str, Any] = {
            "state": target.value,
            "version": run.version + 1,
            "updated_at": now,
        }
        for key, value in fields.items():
            values[key] = json.dumps(list(value)) if key == "blocked_sites" else value
        if attempt is not None:
            values["attempt_id"], values["site"] = attempt.id, attempt.site
        with self._session.begin() as s:
            result = s.execute(
                update(RunRow)
                .where(RunRow.id == run.id, RunRow.version == run.version)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            if attempt is not None:
                s.add(
                    AttemptRow(
                        id=attempt.id,
                        run_id=run.id,
                        number=attempt.number,
                        site=attempt.site,
                        backend_id=None,
                        state=AttemptState.LAUNCHING.value,
                        exit_code=None,
                        reason=None,
                        created_at=now,
                        updated_at=now,
                        port=port,
                        host=None,
                    )
                )
            s.add(
                EventRow(
                    run_id=run.id,
                    at=now,
                    from_state=run.state.value,
                    to_state=target.value,
                    event=event_text,
                    detail=detail,
                )
            )
            row = s.get(RunRow, run.id)
            assert row is not None
            s.refresh(row)
            return _run(row)

    def set_message(self, run: RunView, message: str) -> RunView | None:
        with self._session.begin() as s:
            result = s.execute(
                update(RunRow)
                .where(RunRow.id == run.id, RunRow.version == run.version)
                .values(message=message, version=run.version + 1, updated_at=_now())
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = s.get(RunRow, run.id)
            assert row is not None
            s.refresh(row)
            return _run(row)

    # -- attempts and history --------------------------------------------------

    def update_attempt(
        self,
        update: AttemptUpdate,
    ) -> None:
        """Record what is known of an attempt; ``None`` keeps what was recorded."""
        with self._session.begin() as s:
            row = s.get(AttemptRow, update.attempt_id)
            if row is None:
                return
            row.state = update.state.value
            row.backend_id = update.backend_id or row.backend_id
            row.exit_code = update.exit_code if update.exit_code is not None else row.exit_code
            row.reason = update.reason or row.reason
            row.host = update.host or row.host
            row.updated_at = _now()

    def update_attempts(self, updates: Sequence[AttemptUpdate]) -> None:
        """Record many observations at once (``None`` keeps what was recorded)."""
        if not updates:
            return
        now = _now()
        with self.engine.begin() as c:
            c.execute(
                update(AttemptRow)
                .where(AttemptRow.id == bindparam("b_id"))
                .values(
                    state=bindparam("b_state"),
                    backend_id=func.coalesce(bindparam("b_backend"), AttemptRow.backend_id),
                    exit_code=func.coalesce(bindparam("b_code"), AttemptRow.exit_code),
                    reason=func.coalesce(bindparam("b_reason"), AttemptRow.reason),
                    host=func.coalesce(bindparam("b_host"), AttemptRow.host),
                    updated_at=now,
                ),
                [
                    {
                        "b_id": u.attempt_id,
                        "b_state": u.state.value,
                        "b_backend": u.backend_id,
                        "b_code": u.exit_code,
                        "b_reason": u.reason,
                        "b_host": u.host,
                    }
                    for u in updates
                ],
            )

    def attempts(self, run_id: str) -> list[AttemptView]:
        with self._session() as s:
            q = select(AttemptRow).where(AttemptRow.run_id == run_id).order_by(AttemptRow.number)
            return [_attempt(r) for r in s.scalars(q)]

    def attempt(self, attempt_id: str) -> AttemptView | None:
        with self._session() as s:
            row = s.get(AttemptRow, attempt_id)
            return None if row is None else _attempt(row)

    def services(self, tenant: str | None = None) -> list[tuple[RunView, AttemptView]]:
        """Running runs whose current attempt listens on a port, by run id, with that attempt.

        These are the inference services to route to: with ``tenant``, that tenant's
        own and those whose ``serve.publish_to`` names it; ``None`` means every tenant's.
        """
        with self._session() as s:
            q = (
                select(RunRow, AttemptRow)
                .join(AttemptRow, AttemptRow.id == RunRow.attempt_id)
                .where(RunRow.state == RunState.RUNNING.value, AttemptRow.port.is_not(None))
                .order_by(RunRow.id)
            )
            if tenant is None:
                return [(_run(run), _attempt(attempt)) for run, attempt in s.execute(q)]
            # the spec's text narrows the other tenants' services down cheaply; the parsed
            # workload decides
            named = RunRow.spec.contains(json.dumps(tenant, ensure_ascii=False), autoescape=True)
            q = q.where(or_(RunRow.tenant == tenant, named))
            out = []
            for run_row, attempt_row in s.execute(q):
                run = _run(run_row)
                if run.tenant == tenant or _published_to(run, tenant):
                    out.append((run, _attempt(attempt_row)))
            return out

    def events(self, run_id: str) -> list[EventView]:
        with self._session() as s:
            q = select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)
            return [
                EventView(e.id, e.run_id, e.at, e.from_state, e.to_state, e.event, e.detail)
                for e in s.scalars(q)
            ]

    def session(self) -> Session:
        """A raw session, for tests and maintenance."""
        return self._session()


def _private_sqlite_file(database: str | None) -> None:
    """Create a SQLite file 0600 before SQLite does (it would use the umask); tighten one
    that others may read. In-memory databases have no file."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # no such folder, no right to it: SQLite says so when it connects
        return
    try:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
            log.warning(
                "%s was readable by others (mode %o): made it %o; anyone who could read it "
                "saw the runs and token hashes in it",
                database,
                mode,
                mode & 0o700,
            )
    finally:
        os.close(fd)


def _published_to(run: RunView, tenant: str) -> bool:
    serve = run.workload.serve
    return serve is not None and tenant in serve.publish_to


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
