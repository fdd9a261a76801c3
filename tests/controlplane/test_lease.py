"""Control planes sharing one PostgreSQL database: they migrate it one after the other,
and one at a time reconciles (the holder of the lease), another taking over when it stops.

Real PostgreSQL (a fresh database per test) and real processes where a process dies.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from archipel.controlplane import Store
from archipel.controlplane._lease import ReconcileLease


@pytest.fixture
def engines(postgres_database: str) -> Iterator[list[sa.Engine]]:
    """Three engines on the database: three control planes' connection pools."""
    made = [sa.create_engine(postgres_database) for _ in range(3)]
    yield made
    for engine in made:
        engine.dispose()


@pytest.fixture
def leases(engines: list[sa.Engine]) -> Iterator[list[ReconcileLease]]:
    """The leases of three control planes on the database, released afterwards."""
    made = [ReconcileLease(e) for e in engines]
    yield made
    for lease in made:
        lease.release()


def test_replicas_started_together_migrate_the_database_one_after_the_other(
    postgres_database: str,
) -> None:
    """Four servers starting at once on an empty database: every one starts."""
    code = "import sys; from archipel.controlplane import Store; Store(sys.argv[1]).migrate()"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_database], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0, 0], errors
    engine = sa.create_engine(postgres_database)
    with engine.connect() as c:
        tables = set(sa.inspect(c).get_table_names())
        versions = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert {"runs", "attempts", "run_events", "tokens"} <= tables
    assert len(versions) == 1  # one head, recorded once


def test_one_replica_at_a_time_holds_the_lease(leases: list[ReconcileLease]) -> None:
    a, b, c = leases
    assert a.held()
    assert [b.held(), c.held()] == [False, False]
    assert a.held(), "the holder keeps the lease from round to round"
    assert [b.held(), c.held()] == [False, False]


def test_a_released_lease_is_taken_by_the_next_replica_that_asks(
    leases: list[ReconcileLease],
) -> None:
    a, b, c = leases
    assert a.held() and not b.held()
    a.release()
    assert b.held()
    assert not c.held() and not a.held()


def test_a_holder_whose_session_ends_loses_the_lease_to_another_replica(
    engines: list[sa.Engine], leases: list[ReconcileLease]
) -> None:
    """The database drops the holder's session (a network cut, an operator's
    pg_terminate_backend): another replica takes over, and the old holder knows it."""
    a, b, _ = leases
    assert a.held()
    with engines[2].connect() as admin:
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        admin.commit()
    assert b.held()
    assert not a.held(), "the old holder must stop reconciling"
    b.release()
    assert a.held(), "and may take the lease again once it is free"


_HOLD = """
import sqlalchemy as sa, sys, time
from archipel.controlplane._lease import ReconcileLease
lease = ReconcileLease(sa.create_engine(sys.argv[1]))
print("held" if lease.held() else "not held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_hands_the_lease_over(
    postgres_database: str, leases: list[ReconcileLease]
) -> None:
    """``kill -9`` of the reconciling server: its session ends with it, and the next
    replica that asks holds the lease."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, postgres_database], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        other = leases[0]
        assert not other.held()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        for _ in range(100):  # PostgreSQL sees the closed socket at once; allow slack
            if other.held():
                break
            time.sleep(0.1)
        assert other.held()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_on_sqlite_the_single_server_always_holds_the_lease(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        one, two = ReconcileLease(store.engine), ReconcileLease(store.engine)
        assert one.held() and two.held()
        one.release()
        assert one.held()
    finally:
        store.close()


def test_a_replica_that_cannot_reach_the_database_does_not_reconcile() -> None:
    unreachable = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    try:
        lease = ReconcileLease(unreachable)
        assert not lease.held()
        assert not lease.held()
    finally:
        unreachable.dispose()
