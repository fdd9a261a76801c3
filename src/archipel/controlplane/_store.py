"""The state store: runs, attempts, their history, and API tokens, behind SQLAlchemy.

SQLite or PostgreSQL (see :mod:`archipel.controlplane._database` for how the
database is opened and migrated). Every change of a run's state is one
transaction that checks the run's ``version`` (optimistic concurrency): when
two replicas race, exactly one wins and the other is told so (``None``) and
moves on. The history table is only ever appended to.

What the store hands out are the frozen records of
:mod:`archipel.controlplane._records`; tokens are kept by
:class:`archipel.controlplane._tokens.Tokens`, which the store fronts.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from archipel.backends import AttemptState
from archipel.controlplane._database import migrate, open_engine
from archipel.controlplane._models import AttemptEndingRow, AttemptRow, EventRow, RunRow
from archipel.controlplane._records import (
    AttemptEnding,
    AttemptTerms,
    AttemptUpdate,
    AttemptView,
    EventView,
    NewAttempt,
    Principal,
    RunView,
    attempt_view,
    event_view,
    now,
    run_view,
)
from archipel.controlplane._simulations import Simulations
from archipel.controlplane._tokens import Tokens
from archipel.core import RunState, Workload, check_transition

#: runs in the order they are listed: oldest first, the replicas of a group in replica order
_ORDER = (RunRow.created_at, func.length(RunRow.name), RunRow.name, RunRow.id)

#: the orders a page of runs may be read in (:meth:`Store.runs_page`); ties broken by id
RUN_ORDERS: dict[str, tuple[Any, ...]] = {
    "newest": (RunRow.created_at.desc(), RunRow.id.desc()),
    "oldest": (RunRow.created_at, RunRow.id),
    "updated": (RunRow.updated_at.desc(), RunRow.id.desc()),
    "name": (RunRow.name, RunRow.id),
    "state": (RunRow.state, RunRow.created_at.desc(), RunRow.id.desc()),
}


def random_run_id() -> str:
    """A new run's id: ``r-`` and 12 random hex digits."""
    return f"r-{uuid.uuid4().hex[:12]}"


class Store:
    """Typed access to the control plane's tables."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = now,
        new_id: Callable[[], str] = random_run_id,
    ) -> None:
        """``clock`` (naive UTC) and ``new_id`` (a run's id) are injected by a simulation,
        which runs on a virtual clock and must give the same ids for the same seed."""
        self.url = url
        self.clock = clock
        self.new_id = new_id
        self.engine: Engine = open_engine(url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.tokens = Tokens(self._session)
        self.simulations = Simulations(self._session, clock)

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic ``upgrade head``); safe to run every start."""
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- tokens (see archipel.controlplane._tokens) ------------------------------

    @property
    def token_cache_seconds(self) -> float:
        """How long a verified token is remembered (default 5 s; 0: never)."""
        return self.tokens.cache_seconds

    @token_cache_seconds.setter
    def token_cache_seconds(self, seconds: float) -> None:
        self.tokens.cache_seconds = seconds

    def create_token(self, tenant: str, role: str) -> str:
        """A new API token for ``tenant`` with ``role``; the secret is shown once."""
        return self.tokens.create(tenant, role)

    def authenticate(self, token: str) -> Principal | None:
        """The principal behind a bearer token, or ``None`` (unknown, malformed or revoked).

        A revocation by another process (``archipel token revoke``, another
        replica) takes effect within :attr:`token_cache_seconds`, one by this
        store at once.
        """
        return self.tokens.authenticate(token)

    def revoke_token(self, token_id: str) -> bool:
        return self.tokens.revoke(token_id)

    def token_principal(self, token_id: str) -> Principal | None:
        """The principal of an active token named by its public id (a session names it so)."""
        return self.tokens.active(token_id)

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
        at = self.clock()
        runs = _new_runs(tenant, workload, names, group_id, at, self.new_id)
        views = [run_view(RunRow(**r)) for r in runs]  # transient rows: never added to a session
        events = [
            dict(
                run_id=v.id,
                at=at,
                from_state=None,
                to_state=RunState.PENDING.value,
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
            return None if row is None else run_view(row)

    def runs(
        self,
        tenant: str | None = None,
        states: Sequence[RunState] = (),
        limit: int = 1000,
        group: str | None = None,
    ) -> list[RunView]:
        """Runs oldest first; the replicas of a group (submitted together) in replica order."""
        with self._session() as s:
            q = select(RunRow).order_by(*_ORDER).limit(limit)
            if tenant is not None:
                q = q.where(RunRow.tenant == tenant)
            if group is not None:
                q = q.where(RunRow.group_id == group)
            if states:
                q = q.where(RunRow.state.in_([st.value for st in states]))
            return [run_view(r) for r in s.scalars(q)]

    def runs_page(
        self,
        tenant: str,
        *,
        states: Sequence[RunState] = (),
        sites: Sequence[str] = (),
        data_classes: Sequence[str] = (),
        order: str = "newest",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[RunView], int]:
        """One page of a tenant's runs in one of :data:`RUN_ORDERS`, and how many match.

        Each filter given keeps the runs that match one of its values: ``states``,
        ``sites``, ``data_classes`` (as the specs write them); an empty one keeps all.

        Both queries are bounded by the tenant's indexes (``tenant, created_at``
        and ``tenant, state, created_at``): a page costs ``offset + limit`` rows
        read in order, not a sort of every run.
        """
        where = [RunRow.tenant == tenant]
        if states:
            where.append(RunRow.state.in_([st.value for st in states]))
        if sites:
            where.append(RunRow.site.in_(list(sites)))
        if data_classes:
            where.append(RunRow.data_class.in_(list(data_classes)))
        with self._session() as s:
            total = int(s.scalar(select(func.count()).select_from(RunRow).where(*where)) or 0)
            q = select(RunRow).where(*where).order_by(*RUN_ORDERS[order]).offset(offset)
            return [run_view(r) for r in s.scalars(q.limit(limit))], total

    def data_classes(self, tenant: str) -> list[str]:
        """The data classes of a tenant's runs, as their specs write them, sorted."""
        q = (
            select(RunRow.data_class)
            .where(RunRow.tenant == tenant, RunRow.data_class.is_not(None))
            .distinct()
        )
        with self._session() as s:
            return sorted(str(c) for c in s.scalars(q))

    def busy(self) -> dict[str, int]:
        """Site -> how many runs of every tenant hold one of its slots (launching or running)."""
        active = [st.value for st in RunState if st.active]
        q = (
            select(RunRow.site, func.count())
            .where(RunRow.state.in_(active), RunRow.site.is_not(None))
            .group_by(RunRow.site)
        )
        with self._session() as s:
            return {str(site): int(n) for site, n in s.execute(q)}

    def queued(self, states: Sequence[RunState], per_tenant: int) -> dict[str, list[RunView]]:
        """Each tenant's oldest ``per_tenant`` runs in ``states``, in the order of :meth:`runs`.

        One query (a window function, on SQLite and PostgreSQL alike): however many
        runs a tenant has waiting, at most ``per_tenant`` of them are read.
        """
        rank = func.row_number().over(partition_by=RunRow.tenant, order_by=_ORDER).label("rank")
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
                out.setdefault(row.tenant, []).append(run_view(row))
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

    def workdirs_named(self, ended_since: datetime) -> set[tuple[str, str]]:
        """(tenant, SHA-256) of every workdir named by a run not finished, or by one that
        finished at or after ``ended_since`` (its last change is its end)."""
        finished = [st.value for st in RunState if st.terminal]
        q = select(RunRow.tenant, RunRow.spec).where(
            RunRow.spec.contains('"workdir_sha256":"', autoescape=True),
            or_(RunRow.state.not_in(finished), RunRow.updated_at >= ended_since),
        )
        out = set()
        with self._session() as s:
            for tenant, spec in s.execute(q):
                sha256 = (json.loads(spec).get("run") or {}).get("workdir_sha256")
                if sha256:
                    out.add((tenant, sha256))
        return out

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
        at = self.clock()
        values = _moved_values(run, target, at, attempt, fields)
        with self._session.begin() as s:
            if not _bump(s, run, values):
                return None
            if attempt is not None:
                s.add(_attempt_row(run.id, attempt, port, at))
            s.add(
                EventRow(
                    run_id=run.id,
                    at=at,
                    from_state=run.state.value,
                    to_state=target.value,
                    event=event_text,
                    detail=detail,
                )
            )
            return _reread(s, run.id)

    def set_message(self, run: RunView, message: str) -> RunView | None:
        """Set the run's message if nobody moved it since it was read (else ``None``)."""
        values = {"message": message, "version": run.version + 1, "updated_at": self.clock()}
        with self._session.begin() as s:
            return _reread(s, run.id) if _bump(s, run, values) else None

    # -- attempts and history --------------------------------------------------

    def update_attempt(self, update: AttemptUpdate) -> None:
        """Record what is known of an attempt; ``None`` keeps what was recorded.

        An attempt's first finished state also puts it in the outbox of ended
        attempts, in the same transaction (see :meth:`endings`).
        """
        at = self.clock()
        with self._session.begin() as s:
            row = s.get(AttemptRow, update.attempt_id)
            if row is None:
                return
            row.state = update.state.value
            row.backend_id = update.backend_id or row.backend_id
            row.exit_code = update.exit_code if update.exit_code is not None else row.exit_code
            row.reason = update.reason or row.reason
            row.host = update.host or row.host
            row.updated_at = at
            if update.state.finished:
                s.flush()
                _record_endings(s.connection(), [update.attempt_id], at)

    def update_attempts(self, updates: Sequence[AttemptUpdate]) -> None:
        """Record many observations at once (``None`` keeps what was recorded)."""
        if not updates:
            return
        at = self.clock()
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
                    updated_at=at,
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
            _record_endings(c, [u.attempt_id for u in updates if u.state.finished], at)

    # -- the outbox of ended attempts, for metering -----------------------------

    def endings(self, limit: int = 1000) -> list[AttemptEnding]:
        """Ended attempts not metered yet, oldest end first (at most ``limit``).

        Whoever meters them calls :meth:`forget_endings` once they are safely
        recorded elsewhere; until then they are handed out again (so the
        recording must be idempotent by attempt id).
        """
        q = (
            select(AttemptEndingRow, AttemptRow, RunRow)
            .join(AttemptRow, AttemptRow.id == AttemptEndingRow.attempt_id)
            .join(RunRow, RunRow.id == AttemptRow.run_id)
            .order_by(AttemptEndingRow.ended_at, AttemptEndingRow.attempt_id)
            .limit(limit)
        )
        with self._session() as s:
            return [_ending(e, a, r) for e, a, r in s.execute(q)]

    def forget_endings(self, attempt_ids: Sequence[str]) -> None:
        """Take metered attempts out of the outbox."""
        if not attempt_ids:
            return
        with self.engine.begin() as c:
            c.execute(delete(AttemptEndingRow).where(AttemptEndingRow.attempt_id.in_(attempt_ids)))

    def attempts(self, run_id: str) -> list[AttemptView]:
        with self._session() as s:
            q = select(AttemptRow).where(AttemptRow.run_id == run_id).order_by(AttemptRow.number)
            return [attempt_view(r) for r in s.scalars(q)]

    def attempt(self, attempt_id: str) -> AttemptView | None:
        with self._session() as s:
            row = s.get(AttemptRow, attempt_id)
            return None if row is None else attempt_view(row)

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
                return [(run_view(run), attempt_view(attempt)) for run, attempt in s.execute(q)]
            # the spec's text narrows the other tenants' services down cheaply; the parsed
            # workload decides
            named = RunRow.spec.contains(json.dumps(tenant, ensure_ascii=False), autoescape=True)
            q = q.where(or_(RunRow.tenant == tenant, named))
            out = []
            for run_row, attempt_row in s.execute(q):
                run = run_view(run_row)
                if run.tenant == tenant or _published_to(run, tenant):
                    out.append((run, attempt_view(attempt_row)))
            return out

    def events(self, run_id: str) -> list[EventView]:
        with self._session() as s:
            q = select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)
            return [event_view(e) for e in s.scalars(q)]

    def session(self) -> Session:
        """A raw session, for tests and maintenance."""
        return self._session()


def _new_runs(
    tenant: str,
    workload: Workload,
    names: Sequence[str],
    group_id: str | None,
    at: datetime,
    new_id: Callable[[], str],
) -> list[dict[str, Any]]:
    """The rows of new ``pending`` runs of ``workload``, one per name."""
    max_restarts = workload.run.max_restarts if workload.run is not None else 0
    spec = workload.model_dump_json(by_alias=True)
    # one credential per service, shared by its replicas: its attempts check it, and only
    # the tokens entitled to the service's routes read it
    key = secrets.token_urlsafe(32) if workload.serve is not None else None
    return [
        dict(
            id=new_id(),
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
            created_at=at,
            updated_at=at,
            group_id=group_id,
            service_key=key,
            data_class=workload.data.class_,
        )
        for name in names
    ]


def _moved_values(
    run: RunView,
    target: RunState,
    at: datetime,
    attempt: NewAttempt | None,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The run's columns after a move to ``target`` (``blocked_sites`` stored as JSON)."""
    values: dict[str, Any] = {"state": target.value, "version": run.version + 1, "updated_at": at}
    for key, value in fields.items():
        values[key] = json.dumps(list(value)) if key == "blocked_sites" else value
    if attempt is not None:
        values["attempt_id"], values["site"] = attempt.id, attempt.site
    return values


def _bump(s: Session, run: RunView, values: dict[str, Any]) -> bool:
    """Write ``values`` if the run is still at the version it was read at."""
    result = s.execute(
        update(RunRow).where(RunRow.id == run.id, RunRow.version == run.version).values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def _reread(s: Session, run_id: str) -> RunView:
    row = s.get(RunRow, run_id)
    assert row is not None
    s.refresh(row)
    return run_view(row)


def _attempt_row(run_id: str, attempt: NewAttempt, port: int | None, at: datetime) -> AttemptRow:
    """A new attempt, recorded before its backend is called (so ``launching``)."""
    return AttemptRow(
        id=attempt.id,
        run_id=run_id,
        number=attempt.number,
        site=attempt.site,
        backend_id=None,
        state=AttemptState.LAUNCHING.value,
        exit_code=None,
        reason=None,
        created_at=at,
        updated_at=at,
        port=port,
        host=None,
        terms=None if attempt.terms is None else attempt.terms.to_json(),
    )


def _record_endings(c: Connection, attempt_ids: Sequence[str], at: datetime) -> None:
    """Put the attempts among ``attempt_ids`` into the outbox of ended attempts, once: an
    attempt already there keeps its first end (a later observation of it changes nothing)."""
    if not attempt_ids:
        return
    dialect = postgresql if c.dialect.name == "postgresql" else sqlite
    chosen = select(AttemptRow.id, literal(at)).where(AttemptRow.id.in_(list(attempt_ids)))
    c.execute(
        dialect.insert(AttemptEndingRow)
        .from_select(["attempt_id", "ended_at"], chosen)
        .on_conflict_do_nothing()
    )


def _ending(e: AttemptEndingRow, a: AttemptRow, r: RunRow) -> AttemptEnding:
    return AttemptEnding(
        attempt_id=a.id,
        run_id=r.id,
        tenant=r.tenant,
        name=r.name,
        spec=r.spec,
        site=a.site,
        state=attempt_view(a).state,
        started=a.created_at,
        ended=e.ended_at,
        terms=None if a.terms is None else AttemptTerms.from_json(a.terms),
    )


def _published_to(run: RunView, tenant: str) -> bool:
    serve = run.workload.serve
    return serve is not None and tenant in serve.publish_to
