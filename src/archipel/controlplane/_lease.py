"""Which of the control planes sharing one database reconciles: the holder of the lease.

Several ``archipel server`` processes may serve the API over one PostgreSQL
database (replicas behind a load balancer). Every one of them serves
requests, but only one at a time runs the reconciler: the one that holds a
session-level PostgreSQL advisory lock on a connection of its own. The others
try to take it at each round and serve the API meanwhile.

Why one reconciler and not all of them: every change of a run is already a
transaction that checks the run's version, so two reconcilers never both move
a run. But a round also *acts outside the database*: it observes attempts and
(re)launches the ones recorded as launching. Two reconcilers would observe
and launch the same attempt at the same instant, and each backend would then
have to be idempotent across machines on its own (a file lock on shared
storage, a look-up by job name), which is weaker than not racing at all.

**Taking over.** PostgreSQL releases the lock when the holder's session ends:
a process that exits or is killed (even with ``kill -9``) closes its
connection, and another replica takes the lease at its next round. A holder
that vanishes from the network (a partition, a machine that lost power) is
noticed by PostgreSQL's TCP keepalives, which the lease's session sets to
give up after about a minute of silence. A holder that is alive but stuck
(stopped, hung) keeps the lease: supervise the process (systemd's watchdog,
a liveness probe) to restart it.

**Losing it.** Each round, the holder checks that its session is still
there; a connection that failed means the lock is gone (the session ended
with it), so the replica stops reconciling and tries to take the lease again
like any other.

SQLite is one server's file: there the lease is always held.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("archipel.lease")

#: the advisory lock key of the reconciler (any constant no other lock uses)
RECONCILER_LOCK = 0x61726368_7265636F  # "archreco"

# PostgreSQL gives up on a silent client after idle + interval * count seconds (about 60)
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 30",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
)


class ReconcileLease:
    """The right to reconcile, shared by the control planes on one database.

    :meth:`held` is asked before each round: it takes the lease when it is free
    and checks that it is still held when it was. :meth:`release` hands it over.
    """

    def __init__(self, engine: Engine, key: int = RECONCILER_LOCK) -> None:
        self.engine = engine
        self.key = key
        self._shared = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._said: str | None = None  # why it was not held, logged once until that changes

    def held(self) -> bool:
        """Whether this process may reconcile now (taking the lease if it is free)."""
        if not self._shared:
            return True
        if self._connection is not None:
            if self._alive(self._connection):
                return True
            self._drop("lost the reconciler lease (its database session ended)", unlock=False)
        return self._take()

    def release(self) -> None:
        """Give the lease up (at shutdown): another replica takes it at its next round."""
        if self._connection is not None:
            self._drop("released the reconciler lease", unlock=True)

    def _take(self) -> bool:
        try:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:  # no round could run anyway; say so once per outage
            return self._not_held(f"cannot reach the database for the reconciler lease: {exc.orig}")
        try:
            for statement in _KEEPALIVES:
                connection.execute(text(statement))
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            if taken.scalar_one():
                self._connection, self._said = connection, None
                log.info("this control plane holds the reconciler lease: it reconciles")
                return True
        except DBAPIError as exc:
            connection.close()
            return self._not_held(f"could not ask for the reconciler lease: {exc.orig}")
        connection.close()
        return self._not_held(
            "another control plane reconciles; this one serves the API until it stops"
        )

    def _not_held(self, why: str) -> bool:
        """Log why the lease is not held, once until the reason changes; False."""
        if self._said != why:
            log.info("%s", why)
            self._said = why
        return False

    @staticmethod
    def _alive(connection: Connection) -> bool:
        """The session (and so the lock, which lives as long as it) is still there."""
        try:
            connection.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def _drop(self, why: str, *, unlock: bool) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None
        try:
            if unlock:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except DBAPIError:
            pass  # the session is gone, and the lock with it
        finally:
            connection.close()
        log.info("this control plane %s", why)
