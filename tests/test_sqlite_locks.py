"""Opening a store or a ledger never drops the SQLite locks its own process holds.

Closing any descriptor of a file drops every POSIX lock the process holds on
it, and SQLite's locks are those: a ``Ledger`` or ``Store`` made on a file the
process already writes through another connection must not open that file
itself, or another process may take the lock (and delete the write-ahead log)
under the first writer's feet.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archipel.controlplane._database import _private_sqlite_file
from archipel.ledger._store import _private_file

PRIVATE_FILE_MAKERS = [
    pytest.param(_private_sqlite_file, id="control plane store"),
    pytest.param(_private_file, id="ledger"),
]

# another process tries to take the write lock at once (no busy wait)
_OTHER_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    db.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("took the lock")
"""


@pytest.mark.parametrize("make_private", PRIVATE_FILE_MAKERS)
def test_a_held_write_lock_survives_a_private_file_check(
    tmp_path: Path, make_private: Callable[[str], None]
) -> None:
    path = tmp_path / "state.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    writer.execute("INSERT INTO t VALUES (1)")
    make_private(str(path))
    other = subprocess.run(
        [sys.executable, "-c", _OTHER_WRITER, str(path)], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == "database is locked"
    writer.execute("COMMIT")
    writer.close()


@pytest.mark.parametrize("make_private", PRIVATE_FILE_MAKERS)
def test_a_new_database_file_is_created_readable_by_its_owner_only(
    tmp_path: Path, make_private: Callable[[str], None]
) -> None:
    path = tmp_path / "new.db"
    make_private(str(path))
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_store_tightens_an_existing_file_others_could_read(tmp_path: Path) -> None:
    path = tmp_path / "open.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    _private_sqlite_file(str(path))
    assert path.stat().st_mode & 0o777 == 0o600
