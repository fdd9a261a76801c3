"""The ledger's tables beside the control plane's: one database, two migration chains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from archipel.controlplane import Store
from archipel.ledger import Ledger, ingest_usage

from .conftest import COUNTRIES, postgres_url, usage, write_usage


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from postgres_url()


def test_the_ledger_and_the_control_plane_share_one_database(url: str, tmp_path: Path) -> None:
    store = Store(url)
    store.migrate()
    ledger = Ledger(url)
    ledger.migrate()
    ledger.migrate()  # every ingest migrates: the second time is a no-op
    store.migrate()  # and the control plane's chain is not confused by the ledger's
    ingest_usage(ledger, write_usage(tmp_path / "u.jsonl", usage("r1")), COUNTRIES)
    store.create_token("acme", "admin")
    with ledger.engine.connect() as c:
        ledger_version = c.execute(sa.text("SELECT version_num FROM archipel_ledger_version"))
        control_version = c.execute(sa.text("SELECT version_num FROM alembic_version"))
        assert [r[0] for r in ledger_version] == ["l0003"]
        assert [r[0] for r in control_version] != ["l0001"]
    assert [e.key for e in ledger.current()] == ["r1"]
    ledger.close()
    store.close()


def test_a_new_sqlite_ledger_file_is_private(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    ledger.close()
    assert (tmp_path / "ledger.db").stat().st_mode & 0o077 == 0


def test_the_migrations_build_exactly_the_tables_the_code_declares(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from archipel.ledger._tables import VERSION_TABLE, metadata

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    with ledger.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    ledger.close()


MIGRATE_ON_CUE = """
import sys
from archipel.ledger import Ledger
ledger = Ledger(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
ledger.migrate()
"""


def test_ledgers_started_together_on_a_fresh_postgres_database_all_migrate() -> None:
    import subprocess
    import sys

    # processes, as separate ingests are (Alembic's command API is not thread-safe), each
    # imported and waiting, then all told to migrate at once
    for url in postgres_url():
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_ON_CUE, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for run in runs:
            assert run.stdout is not None and run.stdout.readline() == "ready\n"
        for run in runs:
            assert run.stdin is not None
            run.stdin.write("go\n")
            run.stdin.flush()
        errors = [run.communicate(timeout=120)[1] for run in runs]
        assert [(run.returncode, err[-300:]) for run, err in zip(runs, errors, strict=True)] == [
            (0, "")
        ] * len(runs)
        ledger = Ledger(url)
        with ledger.engine.connect() as c:
            versions = c.execute(sa.text("SELECT version_num FROM archipel_ledger_version"))
            assert [r[0] for r in versions] == ["l0003"]
        ledger.close()
