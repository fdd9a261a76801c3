"""Opening the state database and bringing its schema up to date.

SQLite (a file in the user's data directory) by default, PostgreSQL for
production and several control-plane replicas. A SQLite file is private to
the server's user (mode 0600, and SQLite gives its journal files the same
mode); one found readable by others is tightened, with a warning.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url

log = logging.getLogger("archipel.store")


def open_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with a private file, or a pooled server."""
    kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        _private_sqlite_file(make_url(url).database)
    else:
        # as many pooled connections as request threads: an overflow connection is
        # closed on return, and opening one costs PostgreSQL a new backend process
        kwargs.update(pool_size=32, max_overflow=8, pool_recycle=1800)
    engine = create_engine(url, **kwargs)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema up to date (Alembic ``upgrade head``); safe to run every start."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("archipel.controlplane") / "migrations")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _private_sqlite_file(database: str | None) -> None:
    """Create a SQLite file 0600 before SQLite does (it would use the umask); tighten one
    that others may read. In-memory databases have no file."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # An existing file is never opened here, only looked at by its path: closing any
    # descriptor of a file drops every POSIX lock this process holds on it, and SQLite's
    # locks are those (another store or ledger of this process may hold one).
    try:
        os.close(os.open(database, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:  # no such folder, no right to it: SQLite says so when it connects
        return
    try:
        mode = os.stat(database).st_mode & 0o777
        if mode & 0o077:
            os.chmod(database, mode & 0o700)
            log.warning(
                "%s was readable by others (mode %o): made it %o; anyone who could read it "
                "saw the runs and token hashes in it",
                database,
                mode,
                mode & 0o700,
            )
    except OSError:  # gone meanwhile, or not ours to change: SQLite says so when it connects
        return


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
