"""The ledger's store: entries in SQL tables on any SQLAlchemy URL, appended, never edited.

SQLite (a file) by default, PostgreSQL for a deployment; the URL may be the
control plane's own database, so that one deployment has one ledger: the
ledger's migration chain keeps its own version table
(``archipel_ledger_version``) and touches no other table.

:meth:`Ledger.add` takes a batch of entries and sorts each into one of three:
*new* (its key was never seen), *correction* (its key was seen with other
content: the new row supersedes the current one), *duplicate* (this very
record is already there: nothing is written). Adding the same entries again,
in any order and in any batches, writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    create_engine,
    event,
    exists,
    make_url,
    select,
)

from archipel.core import Money
from archipel.ledger._entry import COLUMNS, Entry, columns, digest_of, join_fixed, moment_of
from archipel.ledger._tables import entries

#: keys looked up in one query (SQLite allows 32,766 parameters)
LOOKUP = 5_000


@dataclass(frozen=True, slots=True)
class Added:
    """What one :meth:`Ledger.add` did."""

    new: int = 0
    corrections: int = 0
    duplicates: int = 0

    def __add__(self, other: Added) -> Added:
        return Added(
            self.new + other.new,
            self.corrections + other.corrections,
            self.duplicates + other.duplicates,
        )


class Ledger:
    """The entries table on one database URL."""

    def __init__(self, url: str, *, lookup: int = LOOKUP, store: Path | None = None) -> None:
        """``lookup``: how many keys one query looks up when entries are added; ``store``:
        the folder of the columnar store's Parquet partitions (see :meth:`default_folder`)."""
        self.url = url
        self.lookup = lookup
        self.store = store
        kwargs: dict[str, Any] = {}
        self._sqlite = make_url(url).get_backend_name() == "sqlite"
        if self._sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            _private_file(make_url(url).database)
        self.engine: Engine = create_engine(url, **kwargs)
        if self._sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def migrate(self) -> None:
        """Bring the ledger's tables up to date (Alembic ``upgrade head``); safe every time."""
        config = Config()
        folder = resources.files("archipel.ledger") / "migrations"
        config.set_main_option("script_location", str(folder))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    def default_folder(self) -> Path | None:
        """The columnar store's folder when none was given or recorded: ``ledger/`` beside a
        SQLite file; ``None`` for another database (a folder must then be given)."""
        url = make_url(self.url)
        if not self._sqlite or not url.database or url.database == ":memory:":
            return None
        if url.database.startswith("file:"):
            return None
        return Path(url.database).resolve().parent / "ledger"

    def folder(self) -> Path | None:
        """The columnar store's folder: the one given, the one recorded at its first use, or
        :meth:`default_folder`; a given one other than the recorded one is refused."""
        from archipel.ledger._columnar import store_folder

        return store_folder(self, self.store)

    def frame(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the view ``entries``: the current entries of both stores.

        The columnar store's Parquet partitions (committed batches only) are read
        in place; the row store's current entries are copied into a DuckDB table
        (they are the few entries written one at a time). An identity the
        columnar store holds is taken from it.
        """
        from archipel.ledger._columnar import committed_files, current_sql
        from archipel.ledger._frame import create_entries, insert_entries

        folder = self.folder()
        files = [] if folder is None else committed_files(self, folder)
        connection = duckdb.connect()
        create_entries(connection, "row_entries")
        insert_entries(connection, self.current(), "row_entries")
        connection.execute(f"CREATE VIEW columnar_entries AS {current_sql(files)}")
        rows = connection.execute("SELECT count(*) FROM row_entries").fetchone()
        if not files:
            connection.execute("CREATE VIEW entries AS SELECT * FROM row_entries")
        elif rows is None or not rows[0]:
            connection.execute("CREATE VIEW entries AS SELECT * FROM columnar_entries")
        else:
            connection.execute(
                "CREATE VIEW entries AS SELECT * FROM columnar_entries UNION ALL "
                "SELECT * FROM row_entries r WHERE NOT EXISTS (SELECT 1 FROM columnar_entries c "
                "WHERE c.source = r.source AND c.key = r.key)"
            )
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: everything added in it is kept together, or nothing is."""
        with self.engine.begin() as connection:
            yield connection

    def add(self, connection: Connection, batch: Sequence[Entry]) -> Added:
        """Append ``batch``: new entries and corrections are written, duplicates are not."""
        done = Added()
        insert = _insert_sql(connection.dialect.paramstyle)
        for start in range(0, len(batch), self.lookup):
            done += _Batch(connection, insert).add(batch[start : start + self.lookup])
        return done

    def current(self) -> Iterator[Entry]:
        """The entries no correction supersedes, in the order they were added."""
        query = select(entries).where(current()).order_by(entries.c.id)
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                yield _entry(row)


class _Batch:
    """Sorts one batch against what the table holds, then writes its new rows at once."""

    def __init__(self, connection: Connection, insert: str) -> None:
        self.connection = connection
        self.insert = insert
        self.seen: dict[tuple[str, str], tuple[int | None, set[str]]] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.pending: dict[tuple[str, str], str] = {}

    def add(self, batch: Sequence[Entry]) -> Added:
        self._look_up((e.source, e.key) for e in batch)
        new = corrections = duplicates = 0
        for entry in batch:
            values = columns(entry)
            identity, digest = (entry.source, entry.key), digest_of(values)
            if identity in self.pending and self.pending[identity] != digest:
                self._flush()  # a correction of an entry of this very batch: it needs its id
            current, digests = self.seen.get(identity, (None, set()))
            if digest in digests or self.pending.get(identity) == digest:
                duplicates += 1
                continue
            if current is None:
                new += 1
            else:
                corrections += 1
            self.pending[identity] = digest
            self.rows.append((digest, current, *values))
        self._flush(look_again=False)
        return Added(new, corrections, duplicates)

    def _look_up(self, identities: Iterable[tuple[str, str]]) -> None:
        by_source: dict[str, set[str]] = {}
        for source, key in identities:
            by_source.setdefault(source, set()).add(key)
        c = entries.c
        for source, keys in by_source.items():
            query = select(c.key, c.digest, c.id).where(c.source == source, c.key.in_(keys))
            for key, digest, row_id in self.connection.execute(query):
                current, digests = self.seen.get((source, key), (None, set()))
                digests.add(digest)
                self.seen[(source, key)] = (max(row_id, current or 0), digests)

    def _flush(self, *, look_again: bool = True) -> None:
        """Write the rows so far; then learn their ids, which later corrections point at."""
        if self.rows:
            # tuples straight to the driver's executemany: binding parameters by name
            # cost more per row than the insert itself
            self.connection.exec_driver_sql(self.insert, self.rows)
        written = list(self.pending)
        self.rows = []
        self.pending = {}
        if look_again:
            self._look_up(written)


def _insert_sql(paramstyle: str) -> str:
    """One row's INSERT in the driver's own placeholders; a record a concurrent ingest
    wrote first is the same record, so a conflict is not an error."""
    names = ("digest", "supersedes", *COLUMNS)
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {entries.name} ({', '.join(names)}) "
        f"VALUES ({', '.join([marker] * len(names))}) ON CONFLICT DO NOTHING"
    )


def current() -> ColumnElement[bool]:
    """True for entries that no correction supersedes."""
    later = entries.alias("later")
    return ~exists().where(later.c.supersedes == entries.c.id)


def _entry(row: Any) -> Entry:
    currency = row["currency"]
    cost = join_fixed(row["cost_micro"], row["cost_femto"])
    return Entry(
        source=row["source"],
        key=row["key"],
        start=moment_of(row["start_us"]),
        end=moment_of(row["end_us"]),
        tenant=row["tenant"],
        cost=None if currency is None else Money(cost, currency),
        workload=row["workload"],
        model=row["model"],
        provider=row["provider"],
        region=row["region"],
        country=row["country"],
        data_class=row["data_class"],
        status=row["status"],
        gpu_hours=join_fixed(row["gpu_hours_micro"], row["gpu_hours_femto"]),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        project=row["project"],
        accelerator=row["accelerator"],
    )


def _private_file(database: str | None) -> None:
    """Create a SQLite file 0600 before SQLite does: what was spent, by whom, is private."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # Never open a file that exists: closing any descriptor of a file drops every POSIX
    # lock this process holds on it, and SQLite's locks are those (a store or another
    # ledger of this process may hold one, and its writes would be lost).
    try:
        os.close(os.open(database, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError:  # there already, no such folder, no right to it: SQLite says so
        return


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL with NORMAL never corrupts the file; a power cut may lose the last ingest, which
    # is then ingested again (idempotent)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
