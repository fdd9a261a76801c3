"""A fresh PostgreSQL database per test, for every store that runs on PostgreSQL.

The server is the one the README names (127.0.0.1:5432, trust auth) unless
``ARCHIPEL_TEST_POSTGRES`` says otherwise. When it does not answer, the test is
skipped on a workstation and fails under ``CI`` (a skip would hide it there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from tests.profiles import in_ci

PG_URL = os.environ.get("ARCHIPEL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def fresh_database(prefix: str = "archipel_test") -> Iterator[str]:
    """The URL of a new, empty database (not migrated), dropped once the caller is done."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if in_ci():
            raise
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    try:
        yield f"{PG_URL}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
