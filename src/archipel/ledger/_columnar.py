"""The columnar store: bulk files parsed by DuckDB into Parquet partitions, with a manifest.

A usage log or an entries file is read in blocks of lines; DuckDB parses
each block's JSON, checks every field in SQL and types it into the
:data:`~archipel.ledger._frame.ENTRY_SCHEMA` columns. A line the SQL checks do
not accept, however slightly unusual, goes to the row path's own Python reader
(:func:`~archipel.ledger._usage.read_usage`'s line parser), which either makes
it an entry after all or reports it with the very message the row path gives:
the SQL only ever accepts what the Python reader accepts, with the same
values, and everything else is decided by the Python reader.

A usage log read whole takes a fast path first: if its lines hold nothing the
fast path cannot vouch for (an escape, a carriage return, NaN, a trailing
comma, a long exponent: one regular expression, which DuckDB matches against
each of the file's lines, counting them, in parallel), DuckDB's JSON
reader reads it once, each field as its JSON text, and casts check every
field as the line path's SQL does, in the same statement. Only if every line
passes, and every line is a row (no blank line, so line numbers hold), are
the rows staged; otherwise nothing is, and the file is read line by line as
above. Only the reads that number lines keep the file's order (a table's row
number is then the line's); every other statement runs in any order, on every
core.

Each row's identity is ``(source, key)`` and its content a digest (MD5 of its
typed columns, computed as the row is staged). The rows of a file are sorted as
:meth:`Ledger.add` sorts them: a row whose (source, key, digest) the store
already holds, or an earlier line of the file holds, is a duplicate; the first
new row of a key the store never saw is *new*, every other a *correction*.
Duplicates being few as a rule, they are what is computed (a hash aggregate of
the file's repeats, a join with the stored digests). Only new rows and
corrections are written, as Parquet files partitioned hive-style by source and
month of their start (``source=gateway/month=2026-11/part-<batch>-0.parquet``),
each row carrying its batch (increasing with every ingest) and its line. The
current entry of a key is its row of the latest batch, latest line.

Nothing is half-visible: files are written under a hidden temporary folder,
moved into place, and only then is the batch committed to the manifest tables
(``ledger_batches``, ``ledger_parts``) in SQL. Readers read only files a
committed batch lists; a file no batch lists (an ingest stopped before its
commit) is deleted by the next ingest. Ingests of one store run one at a time
(a lock file in the store's folder).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import duckdb
from sqlalchemy import func, insert, select

from archipel.core import InputError
from archipel.ledger._entry import Entry
from archipel.ledger._frame import DECIMAL, ENTRY_COLUMNS, ENTRY_SCHEMA, entry_row
from archipel.ledger._tables import batches, parts, store
from archipel.ledger._usage import SOURCE, Countries, UsageProblem, parse_line

if TYPE_CHECKING:
    from archipel.ledger._store import Added, Ledger

#: bytes read and parsed at a time (whole lines)
BLOCK = 32 * 2**20
#: bytes of a file's head fingerprinted to tell a grown file from a rewritten one
HEAD = 4096

Format = Literal["usage", "entries"]

_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")


class StoreError(InputError):
    """The columnar store's folder is missing, or is not the one the database recorded."""


@dataclass(frozen=True, slots=True)
class ColumnarReport:
    """What a columnar ingest read and did: the same figures as the row path's report."""

    path: str
    lines: int
    added: Added
    problems: tuple[UsageProblem, ...] = field(default=())
    batch: int | None = None
    start_offset: int = 0
    #: the file was read whole by the fast path (every line clean); False: line by line
    fast: bool = False


# ---------------------------------------------------------------------------------------------
# where the store lives


def store_folder(ledger: Ledger, given: Path | None) -> Path | None:
    """The store's folder: ``given`` (recorded at first use), the recorded one, or beside a
    SQLite file; ``None`` when there is none yet and none can be chosen."""
    with ledger.engine.connect() as connection:
        recorded = connection.execute(select(store.c.folder)).scalar()
    if given is not None:
        folder = given.expanduser().resolve()
        if recorded is not None and Path(recorded) != folder:
            raise StoreError(
                f"--store {given}: this ledger's Parquet partitions are in {recorded} (recorded "
                "at its first ingest); give that folder, or another database for another ledger"
            )
        return folder
    if recorded is not None:
        return Path(recorded)
    return ledger.default_folder()


def _record_folder(ledger: Ledger, folder: Path) -> None:
    with ledger.engine.begin() as connection:
        if connection.execute(select(store.c.folder)).scalar() is None:
            connection.execute(insert(store).values(id=1, folder=str(folder)))


def committed_files(ledger: Ledger, folder: Path) -> list[str]:
    """The Parquet files of committed batches, as absolute paths."""
    with ledger.engine.connect() as connection:
        files = connection.execute(select(parts.c.file).order_by(parts.c.file)).scalars().all()
    return [str(folder / name) for name in files]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clean_orphans(folder: Path, committed: set[str]) -> None:
    """Delete what stopped ingests left: temporary folders, and files no batch lists."""
    for temporary in folder.glob(".tmp-*"):
        shutil.rmtree(temporary, ignore_errors=True)
    for file in folder.glob("source=*/month=*/*.parquet"):
        if str(file) not in committed:
            file.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# reading the current entries


def current_sql(files: list[str]) -> str:
    """A query of the current entries of ``files`` (the latest batch's row of each key)."""
    if not files:
        columns = ", ".join(f'NULL::{kind} AS "{name}"' for name, kind in ENTRY_SCHEMA)
        return f"SELECT {columns} WHERE false"
    listed = ", ".join(_quote(f) for f in files)
    names = ", ".join(f'"{name}"' for name in ENTRY_COLUMNS)
    return (
        f"SELECT {names} FROM read_parquet([{listed}], hive_partitioning = false) "
        "QUALIFY row_number() OVER (PARTITION BY source, key ORDER BY batch DESC, line DESC) = 1"
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# parsing a usage log in SQL

#: the gateway fields the SQL reads, in order (json_extract's list of paths)
_FIELDS = (
    "ts",
    "latency_ms",
    "request_id",
    "tenant",
    "model",
    "data_class",
    "replica",
    "provider",
    "region",
    "status",
    "input_tokens",
    "output_tokens",
    "cost",
    "currency",
)
_AT = {name: i + 1 for i, name in enumerate(_FIELDS)}
#: the last moment a date holds, and a margin under it past which the Python reader decides
_SAFE_US = 2.5e17


def _v(name: str) -> str:
    """The field's text (a string unescaped, a number as written): one parse for all."""
    return f"x[{_AT[name]}]"


def _t(name: str) -> str:
    """The field's JSON type (NULL when the key is missing)."""
    return f"t[{_AT[name]}]"


def _text(name: str) -> str:
    return f"({_t(name)} = 'VARCHAR' AND strlen({_v(name)}) BETWEEN 1 AND 200)"


def _optional(name: str) -> str:
    return f"({_t(name)} = 'NULL' OR {_text(name)})"


def _count(name: str, top: int = 2**63 - 1) -> str:
    return (
        f"({_t(name)} IN ('UBIGINT', 'BIGINT') "
        f"AND TRY_CAST({_v(name)} AS BIGINT) BETWEEN 0 AND {top})"
    )


def _number(name: str, scale: float) -> str:
    value = f"TRY_CAST({_v(name)} AS DOUBLE)"
    scaled = f"({value} * {scale})"
    return (
        f"({_t(name)} IN ('UBIGINT', 'BIGINT', 'DOUBLE') AND isfinite({value}) "
        f"AND {value} >= 0 AND {scaled} < {_SAFE_US} "
        f"AND {scaled} - floor({scaled}) <> 0.5)"
    )


#: a line the SQL leaves to the Python reader: JSON DuckDB reads but the gateway's reader
#: does not (trailing commas, NaN or Infinity in any case, huge exponents), or escapes it may
#: read otherwise
_UNUSUAL = r",\s*[}\]]|[0-9][eE]|[0-9]{200}|[:,\[]\s*-?([iI]|[nN][aA])"
_ODD = "contains(line, 'NaN') OR contains(line, 'Infinity') OR contains(line, '\\u')"

#: the gateway's fields in the order it writes them (gateway/_metering.py): a line with
#: exactly these keys has no key twice; any other line is checked for repeated keys
GATEWAY_KEYS = (
    "ts", "request_id", "tenant", "data_class", "model", "status", "replica", "provider",
    "region", "input_tokens", "output_tokens", "tokens_counted", "latency_ms", "attempts",
    "cost", "currency", "stream",
)  # fmt: skip
_UNIQUE_KEYS = (
    "(json_keys(line) = [" + ", ".join(f"'{k}'" for k in GATEWAY_KEYS) + "] OR "
    "len(json_keys(line)) = len(list_distinct(json_keys(line))))"
)

_USAGE_OK = " AND ".join(
    [
        _number("ts", 1e6),
        _number("latency_ms", 1e3),
        _text("request_id"),
        _text("tenant"),
        _text("model"),
        _text("data_class"),
        _optional("replica"),
        _optional("provider"),
        _optional("region"),
        _count("status", 2**31 - 1),
        _count("input_tokens"),
        _count("output_tokens"),
        f"{_t('cost')} = 'VARCHAR'",
        f"regexp_full_match({_v('cost')}, '[0-9]{{1,10}}(\\.[0-9]{{1,15}})?')",
        f"TRY_CAST({_v('cost')} AS DECIMAL(38, 15)) <= 1000000000",
        f"{_t('currency')} = 'VARCHAR'",
        f"(regexp_full_match({_v('currency')}, '[A-Z]{{3}}') OR "
        f"({_v('currency')} = '' AND TRY_CAST({_v('cost')} AS DECIMAL(38, 15)) = 0))",
        "end_us - lat_us >= 0",
    ]
)


def _usage_select() -> str:
    """Typed entry columns of the accepted lines of ``block``; ``ok`` false: the Python
    reader decides. Needs a table ``countries(provider, region, country)``."""
    paths = ", ".join(f"'$.{name}'" for name in _FIELDS)
    s = _v
    cost = s("cost")
    currency = s("currency")
    return f"""
    WITH parsed AS (
        SELECT line_no, line,
            json_valid(line) AND NOT ({_ODD}) AND NOT regexp_matches(line, '{_UNUSUAL}')
            AS syntax
        FROM block
    ), fields AS MATERIALIZED (
        SELECT line_no, line, syntax,
            CASE WHEN syntax AND json_type(line) = 'OBJECT' AND {_UNIQUE_KEYS}
            THEN json_type(line, [{paths}]) END AS t,
            CASE WHEN t IS NOT NULL THEN json_extract_string(line, [{paths}]) END AS x
        FROM parsed
    ), checked AS MATERIALIZED (
        SELECT *,
            TRY_CAST(round(TRY_CAST({_v("ts")} AS DOUBLE) * 1e6) AS BIGINT) AS end_us,
            TRY_CAST(round(TRY_CAST({_v("latency_ms")} AS DOUBLE) * 1e3) AS BIGINT) AS lat_us
        FROM fields WHERE t IS NOT NULL
    ), typed AS (
        SELECT line_no,
            {s("request_id")} AS key,
            make_timestamp(end_us - lat_us) AS start,
            make_timestamp(end_us) AS "end",
            {s("tenant")} AS tenant,
            CASE WHEN {_t("replica")} = 'NULL' THEN NULL ELSE {s("replica")} END
                AS workload,
            {s("model")} AS model,
            CASE WHEN {_t("provider")} = 'NULL' THEN NULL ELSE {s("provider")} END
                AS provider,
            CASE WHEN {_t("region")} = 'NULL' THEN NULL ELSE {s("region")} END
                AS region,
            {s("data_class")} AS data_class,
            TRY_CAST({_v("status")} AS INTEGER) AS status,
            TRY_CAST({_v("input_tokens")} AS BIGINT) AS input_tokens,
            TRY_CAST({_v("output_tokens")} AS BIGINT) AS output_tokens,
            CASE WHEN {currency} = '' THEN NULL ELSE TRY_CAST({cost} AS {DECIMAL}) END AS cost,
            CASE WHEN {currency} = '' THEN NULL ELSE {currency} END AS currency
        FROM checked WHERE {_USAGE_OK}
    )
    SELECT t.line_no, '{SOURCE}' AS source, t.key, t.start, t."end", t.tenant,
        NULL::VARCHAR AS project, t.workload, t.model, NULL::VARCHAR AS accelerator,
        t.provider, t.region, c.country, t.data_class, t.status, 0::{DECIMAL} AS gpu_hours,
        t.input_tokens, t.output_tokens, t.cost, t.currency
    FROM typed t LEFT JOIN countries c ON c.provider = t.provider AND c.region = t.region
    """


# ---------------------------------------------------------------------------------------------
# the fast path: a clean usage log read once by DuckDB's JSON reader

#: bytes of a file the fast path does not vouch for: any escape, a carriage return, and JSON
#: DuckDB's reader takes but the gateway's does not (a byte order mark, NaN and Infinity in
#: any case, trailing commas, numbers that may overflow a double: exponents of three digits,
#: 200 digits in a row); an empty array too
_SUSPECT = (
    r"\\|\r|\x{FEFF}|[0-9]{200}|"
    r"[:,\[][ \t]*(-?([iI]|[nN][aA])|[}\]]|-?[0-9.]+[eE][+-]?[0-9]{3})"
)
#: the fields that may be null (a missing key is an error, but DuckDB reads both as NULL)
_NULLABLE = ("replica", "provider", "region")
_TEXTS = ("request_id", "tenant", "model", "data_class", *_NULLABLE, "cost", "currency")
_COUNTS = (("status", 2**31 - 1), ("input_tokens", 2**63 - 1), ("output_tokens", 2**63 - 1))


def _vouch(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int, int] | None:
    """(lines, bytes to the end of the last complete line, newlines) of ``path``, or ``None``
    when a line of it holds what the fast path does not vouch for (see ``_SUSPECT``), or is
    blank, or DuckDB would not number the lines as the file does.

    DuckDB reads the lines as text in parallel and matches each (RE2). Ending lines only at
    a newline, it refuses a carriage return (which Python's reader would not end a line at),
    so its lines are the file's, but for a byte order mark at the start, which it drops."""
    with path.open("rb") as f:
        if f.read(3) == b"\xef\xbb\xbf":
            return None
    try:
        found = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE line IS NULL OR regexp_matches(line, ?)) "
            "FROM read_csv(?, columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', "
            "escape = '', new_line = '\\n', header = false, auto_detect = false, "
            "compression = 'none')",
            [_SUSPECT, str(path)],
        ).fetchone()
    except duckdb.Error:  # a byte it will not take in a line (not UTF-8, the delimiter, CR)
        return None
    if found is None or found[1]:
        return None
    lines = int(found[0])
    reached = _line_end(path)
    with path.open("rb") as f:
        complete = reached == f.seek(0, os.SEEK_END)
    return lines, reached, lines if complete else lines - 1


def _line_end(path: Path) -> int:
    """The bytes of ``path`` up to the end of its last complete line."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - HEAD)
            f.seek(start)
            cut = f.read(end - start).rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            end = start
    return 0


def _keys_present(path: Path, lines: int) -> bool:
    """Whether every line has the top-level keys of ``_NULLABLE`` (null or not).

    Only asked of a file ``_vouch`` accepted and DuckDB read, one object a line, no key
    twice: with no escape, a quote always opens or closes a string, so ``"replica":`` is a
    key; with one ``{`` a line there is no nested object, so it is a top-level key."""
    marks = [b"{", *(f'"{name}":'.encode() for name in _NULLABLE)]
    counts = dict.fromkeys(marks, 0)
    for block, _, _ in _blocks(path, 0):
        for mark in marks:
            counts[mark] += block.count(mark)
    return all(n == lines for n in counts.values())


def _fast_select() -> str:
    """The entry columns and digest of every line of the usage log ``?`` (DuckDB's JSON
    reader, each field's JSON text, NULL when null or missing), in the file's order; the
    country from the map ``?`` (provider, unit separator, region: a separator no text of a
    file without escapes holds), not a join, which need not keep the order. ``ok``: the line
    passes checks mirroring ``_USAGE_OK``; ``has_null``: a nullable field is NULL (null, or
    missing). With no escape in the file, a JSON string is its text between its quotes, and
    a JSON number is written without quotes."""

    def v(name: str) -> str:
        return f'("{name}"::VARCHAR)'

    strings = ", ".join(
        f"""CASE WHEN starts_with({v(n)}, '"') THEN {v(n)}[2:-2] END AS "s_{n}\"""" for n in _TEXTS
    )
    counts = ", ".join(f'TRY_CAST({v(n)} AS BIGINT) AS "i_{n}"' for n, _ in _COUNTS)

    def text(name: str) -> str:
        return f'(strlen("s_{name}") BETWEEN 1 AND 200)'

    def number(name: str, scale: float) -> str:
        value = f'"d_{name}"'
        scaled = f"({value} * {scale})"
        return (
            f"(isfinite({value}) AND {value} >= 0 AND {scaled} < {_SAFE_US} "
            f"AND {scaled} - floor({scaled}) <> 0.5)"
        )

    checks = " AND ".join(
        [
            number("ts", 1e6),
            number("latency_ms", 1e3),
            *(text(n) for n in ("request_id", "tenant", "model", "data_class")),
            *(f"({v(n)} IS NULL OR {text(n)})" for n in _NULLABLE),
            # a whole number written as one (200.0 casts to 200, but is not written so)
            *(f'"i_{n}"::VARCHAR = {v(n)} AND "i_{n}" BETWEEN 0 AND {top}' for n, top in _COUNTS),
            "regexp_full_match(s_cost, '[0-9]{1,10}(\\.[0-9]{1,15})?')",
            "amount <= 1000000000",
            "(regexp_full_match(s_currency, '[A-Z]{3}') OR (s_currency = '' AND amount = 0))",
            "end_us - lat_us >= 0",
        ]
    )
    columns = ", ".join(f"'{name}': 'JSON'" for name in _FIELDS)
    nulls = " OR ".join(f'"{name}" IS NULL' for name in _NULLABLE)
    return f"""
    WITH cast_ AS (
        SELECT {strings}, {counts},
            TRY_CAST({v("ts")} AS DOUBLE) AS d_ts,
            TRY_CAST({v("latency_ms")} AS DOUBLE) AS d_latency_ms, ({nulls}) AS has_null, *
        FROM read_json(?, format = 'newline_delimited', columns = {{{columns}}},
            compression = 'none')
    ), checked AS (
        SELECT *, TRY_CAST(round(d_ts * 1e6) AS BIGINT) AS end_us,
            TRY_CAST(round(d_latency_ms * 1e3) AS BIGINT) AS lat_us,
            TRY_CAST(s_cost AS {DECIMAL}) AS amount
        FROM cast_
    ), entry AS (
        SELECT '{SOURCE}' AS source, s_request_id AS key,
            make_timestamp(end_us - lat_us) AS start, make_timestamp(end_us) AS "end",
            s_tenant AS tenant, NULL::VARCHAR AS project, s_replica AS workload,
            s_model AS model, NULL::VARCHAR AS accelerator, s_provider AS provider,
            s_region AS region, map(?::VARCHAR[], ?::VARCHAR[])[
                s_provider || chr(31) || s_region] AS country,
            s_data_class AS data_class, i_status::INTEGER AS status,
            0::{DECIMAL} AS gpu_hours, i_input_tokens AS input_tokens,
            i_output_tokens AS output_tokens,
            CASE WHEN s_currency = '' THEN NULL ELSE amount END AS cost,
            CASE WHEN s_currency = '' THEN NULL ELSE s_currency END AS currency,
            coalesce({checks}, false) AS ok, has_null
        FROM checked
    )
    SELECT *, {_digest()} AS digest FROM entry
    """


@contextmanager
def _in_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep rows in the order they are read (a table's ``rowid`` is then the line's number);
    everything else may run in any order, which is faster."""
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute("SET preserve_insertion_order = false")


def _stage_fast(
    con: duckdb.DuckDBPyConnection, path: Path, countries: Countries
) -> tuple[int, int, int] | None:
    """Read the usage log ``path`` whole, as ``staged``, if every line of it is an entry the
    fast path can vouch for: (lines, bytes to the end of the last complete line, newlines).
    ``None``, with nothing staged: some line is not, and the line-by-line path decides.

    Two passes: the lines matched against ``_SUSPECT`` (and counted) by DuckDB, then
    DuckDB's JSON reader typing, checking and digesting every line in the file's order, into
    the table ``fast`` (``staged`` is then a view of it: a row's number is its line's)."""
    known = [(f"{p}\x1f{r}", c) for (p, r), c in countries.items()]
    counted = _vouch(con, path)
    if counted is None:
        return None
    lines = counted[0]
    try:
        with _in_order(con):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE fast AS {_fast_select()}",
                [str(path), [k for k, _ in known], [c for _, c in known]],
            )
    except duckdb.Error:  # a line DuckDB will not read (not an object, a key twice, ...)
        return None
    rows, bad, null = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT ok), count(*) FILTER (WHERE has_null) "
        "FROM fast"
    ).fetchone()  # type: ignore[misc]
    if (
        rows != lines  # a line of white space, which the JSON reader skips (numbering)
        or bad
        or (null and not _keys_present(path, lines))  # a key missing rather than null
    ):
        con.execute("DROP TABLE fast")
        return None
    names = ", ".join(f'"{n}"' for n in ENTRY_COLUMNS)
    con.execute("DROP TABLE staged")
    con.execute(
        f"CREATE TEMP VIEW staged AS SELECT rowid + 1 AS line_no, {names}, digest FROM fast"
    )
    return counted


# ---------------------------------------------------------------------------------------------
# the native entries format


def _entries_select() -> str:
    """Typed columns of the accepted lines of an entries file (see LEDGER format in
    docs/ledger.md); anything else is reported by :func:`entries_problem`."""

    def s(name: str) -> str:
        return f"(j ->> '$.{name}')"

    def t(name: str) -> str:
        return f"json_type(j, '$.{name}')"

    def text(name: str, required: bool) -> str:
        present = f"{t(name)} = 'VARCHAR' AND strlen({s(name)}) BETWEEN 1 AND 200"
        if required:
            return f"({present})"
        return f"({t(name)} IS NULL OR {t(name)} = 'NULL' OR ({present}))"

    def decimal(name: str) -> str:
        return (
            f"({t(name)} IS NULL OR {t(name)} = 'NULL' OR ({t(name)} = 'VARCHAR' AND "
            f"regexp_full_match({s(name)}, '-?[0-9]{{1,23}}(\\.[0-9]{{1,15}})?')))"
        )

    def count(name: str) -> str:
        return (
            f"({t(name)} IS NULL OR {t(name)} = 'NULL' OR ({t(name)} IN ('UBIGINT', 'BIGINT') AND "
            f"TRY_CAST(j ->> '$.{name}' AS BIGINT) >= 0))"
        )

    def moment(name: str) -> str:
        return (
            f"({t(name)} = 'VARCHAR' AND regexp_full_match({s(name)}, "
            "'[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?"
            "(Z|[+-][0-9]{2}:?[0-9]{2})') AND try_cast(" + s(name) + " AS TIMESTAMPTZ) IS NOT NULL)"
        )

    checks = " AND ".join(
        [
            f"{t('source')} = 'VARCHAR' AND regexp_full_match({s('source')}, "
            f"'{_SOURCE_NAME.pattern}')",
            text("key", True),
            moment("start"),
            moment("end"),
            text("tenant", True),
            *(
                text(n, False)
                for n in ("project", "workload", "model", "accelerator", "provider", "region")
            ),
            text("data_class", False),
            f"({t('country')} IS NULL OR {t('country')} = 'NULL' OR ({t('country')} = 'VARCHAR' "
            f"AND regexp_full_match({s('country')}, '[A-Z]{{2}}')))",
            f"({t('status')} IS NULL OR {t('status')} = 'NULL' OR "
            f"({t('status')} IN ('UBIGINT', 'BIGINT') AND "
            "TRY_CAST(j ->> '$.status' AS BIGINT) BETWEEN 0 AND 2147483647))",
            decimal("gpu_hours"),
            decimal("cost"),
            count("input_tokens"),
            count("output_tokens"),
            f"(({t('cost')} IS NULL OR {t('cost')} = 'NULL') OR ({t('currency')} = 'VARCHAR' "
            f"AND regexp_full_match({s('currency')}, '[A-Z]{{3}}')))",
        ]
    )

    def utc(name: str) -> str:
        return f"timezone('UTC', TRY_CAST({s(name)} AS TIMESTAMPTZ))"

    def nullable(name: str) -> str:
        return f"CASE WHEN {t(name)} = 'VARCHAR' THEN {s(name)} END"

    return f"""
    WITH parsed AS MATERIALIZED (
        SELECT line_no, line, CASE WHEN json_valid(line)
            AND NOT ({_ODD}) AND NOT regexp_matches(line, '{_UNUSUAL}')
            AND json_type(line) = 'OBJECT'
            AND len(json_keys(line)) = len(list_distinct(json_keys(line)))
            THEN line::JSON END AS j
        FROM block
    )
    SELECT line_no,
        {s("source")} AS source, {s("key")} AS key, {utc("start")} AS start,
        {utc("end")} AS "end", {s("tenant")} AS tenant, {nullable("project")} AS project,
        {nullable("workload")} AS workload, {nullable("model")} AS model,
        {nullable("accelerator")} AS accelerator, {nullable("provider")} AS provider,
        {nullable("region")} AS region, {nullable("country")} AS country,
        {nullable("data_class")} AS data_class,
        TRY_CAST(j ->> '$.status' AS INTEGER) AS status,
        coalesce(TRY_CAST({s("gpu_hours")} AS {DECIMAL}), 0) AS gpu_hours,
        coalesce(TRY_CAST(j ->> '$.input_tokens' AS BIGINT), 0) AS input_tokens,
        coalesce(TRY_CAST(j ->> '$.output_tokens' AS BIGINT), 0) AS output_tokens,
        TRY_CAST({s("cost")} AS {DECIMAL}) AS cost,
        CASE WHEN {t("cost")} = 'VARCHAR' THEN {s("currency")} END AS currency
    FROM parsed WHERE j IS NOT NULL AND {checks} AND {utc("end")} >= {utc("start")}
    """


def entries_problem(raw: bytes) -> str:
    """Why a line of an entries file is not an entry (for lines the SQL did not accept)."""
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        return "not a JSON object (a line cut short or edited?)"
    if not isinstance(doc, dict):
        return "not a JSON object: one entry a line"
    for name in ("source", "key", "start", "end", "tenant"):
        if name not in doc or doc[name] is None:
            return f"{name}: missing (every entry has it)"
    if not isinstance(doc["source"], str) or not _SOURCE_NAME.fullmatch(doc["source"]):
        return (
            f"source: expected a lower-case name such as runs or gateway, got {doc['source']!r:.60}"
        )
    for name in ("start", "end"):
        if not isinstance(doc[name], str) or not re.fullmatch(
            r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:?\d\d)", doc[name]
        ):
            return f"{name}: expected an ISO 8601 time with its zone, got {doc[name]!r:.60}"
    for name in ("gpu_hours", "cost"):
        value = doc.get(name)
        if value is not None and (
            not isinstance(value, str) or not re.fullmatch(r"-?\d{1,23}(\.\d{1,15})?", value)
        ):
            return (
                f'{name}: expected a decimal string with at most 15 decimals such as "1.5", '
                f"got {value!r:.60}"
            )
    if doc.get("cost") is not None and not (
        isinstance(doc.get("currency"), str) and re.fullmatch(r"[A-Z]{3}", doc["currency"])
    ):
        return f"currency: expected an ISO 4217 code such as USD, got {doc.get('currency')!r:.60}"
    for name in ("input_tokens", "output_tokens", "status"):
        value = doc.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name}: expected a whole number of at least 0, got {value!r:.60}"
        if isinstance(value, int) and value < 0:
            return f"{name}: expected a whole number of at least 0, got {value!r:.60}"
    return (
        "not an entry: see the entries format in docs/ledger.md (a text too long, an end "
        "before the start, a country not two capitals, an unusual number or escape)"
    )


# ---------------------------------------------------------------------------------------------
# ingesting


def fingerprint(path: Path, length: int) -> str:
    """``length:hex`` of the SHA-256 of the first ``length`` bytes of ``path``."""
    with path.open("rb") as f:
        head = f.read(length)
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def read_up_to(ledger: Ledger, path: Path) -> int:
    """The byte offset of ``path`` that earlier ingests read up to (0: none, or rewritten)."""
    return _resume(ledger, path.resolve())[0]


def _resume(ledger: Ledger, path: Path) -> tuple[int, int]:
    """Where to read ``path`` from: (byte offset, lines before it); (0, 0): from the start."""
    with ledger.engine.connect() as connection:
        last = connection.execute(
            select(batches.c.offset, batches.c.lines, batches.c.fingerprint)
            .where(batches.c.path == str(path))
            .order_by(batches.c.id.desc())
            .limit(1)
        ).first()
    if last is None or path.suffix == ".gz":
        return 0, 0
    offset, lines, recorded = last
    length = int(recorded.split(":", 1)[0])
    if path.stat().st_size < offset or fingerprint(path, length) != recorded:
        return 0, 0  # rotated or rewritten: read it whole again
    return int(offset), int(lines)


def _open(path: Path) -> IO[bytes]:
    """``path`` for reading bytes, uncompressed if it is gzipped."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _blocks(path: Path, offset: int) -> Iterator[tuple[bytes, int, bool]]:
    """Whole lines of ``path`` from ``offset``: (block, bytes read so far, last block)."""
    with _open(path) as f:
        if offset:
            f.seek(offset)
        done = offset
        rest = b""
        while True:
            data = f.read(BLOCK)
            if not data:
                if rest:
                    yield rest, done, True
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            done += cut
            yield data[:cut], done, False


_BLANK = "trim(line, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) <> ''"
#: lines staged at a time from a file DuckDB read whole (the progress bar moves between)
CHUNK = 1_000_000


def _read_whole(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    """Read ``path`` into the table ``lines`` (one row a line, in order); the number of
    lines, or ``None`` when DuckDB's reading would not number them as the file does."""
    try:
        with _in_order(con):
            con.execute(
                "CREATE OR REPLACE TEMP TABLE lines AS SELECT line FROM read_csv(?, "
                "columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', escape = '', "
                "header = false, auto_detect = false, compression = 'auto')",
                [str(path)],
            )
    except duckdb.Error:  # a byte it will not take as a line (not UTF-8, the delimiter)
        return None
    rows = con.execute("SELECT count(*) FROM lines").fetchone()
    newlines, last = 0, b"\n"
    with _open(path) as f:
        while data := f.read(BLOCK):
            if newlines == 0 and last == b"\n" and data.startswith(b"\xef\xbb\xbf"):
                return None  # a byte order mark, which DuckDB's reader drops: the line is odd
            newlines += data.count(b"\n") + data.count(b"\r")
            last = data[-1:]
    expected = newlines + (0 if last == b"\n" else 1)
    return expected if rows is not None and rows[0] == expected else None


def _stage_whole(
    con: duckdb.DuckDBPyConnection,
    total: int,
    name: str,
    fmt: Format,
    countries: Countries,
    on_chunk: Callable[[int], None],
) -> tuple[int, list[UsageProblem]]:
    lines, problems = 0, []
    for start in range(0, total, CHUNK):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE block AS SELECT rowid + 1 AS line_no, line FROM lines "
            f"WHERE rowid >= {start} AND rowid < {start + CHUNK} AND line IS NOT NULL "
            f"AND {_BLANK}"
        )
        read, found = _stage(con, name, fmt, countries)
        lines += read
        problems += found
        on_chunk(min(start + CHUNK, total))
    return lines, problems


def _stage_block(
    con: duckdb.DuckDBPyConnection,
    block: bytes,
    first_line: int,
    name: str,
    fmt: Format,
    countries: Countries,
) -> tuple[int, list[UsageProblem]]:
    """Parse ``block`` (whole lines from ``first_line``) into ``staged``."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:  # rare: bytes that are not UTF-8; the Python reader decides
        rejected = [
            (first_line + i, raw) for i, raw in enumerate(block.split(b"\n")) if raw.strip()
        ]
        return len(rejected), _decide(con, rejected, name, fmt, countries)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE block AS SELECT ?::BIGINT + i - 1 AS line_no, line "
        "FROM (SELECT unnest(s) AS line, generate_subscripts(s, 1) AS i "
        f"FROM (SELECT string_split(?, chr(10)) AS s)) WHERE {_BLANK}",
        [first_line, text],
    )
    return _stage(con, name, fmt, countries)


def _stage(
    con: duckdb.DuckDBPyConnection, name: str, fmt: Format, countries: Countries
) -> tuple[int, list[UsageProblem]]:
    """Parse the lines of ``block`` into ``staged``; returns (non-blank lines, problems)."""
    select = _usage_select() if fmt == "usage" else _entries_select()
    con.execute(f"CREATE OR REPLACE TEMP TABLE accepted AS {select}")
    con.execute(f"INSERT INTO staged SELECT *, {_digest()} AS digest FROM accepted")
    lines = con.execute("SELECT count(*) FROM block").fetchone()[0]  # type: ignore[index]
    rejected = [
        (n, line.encode())
        for n, line in con.execute(
            "SELECT line_no, line FROM block ANTI JOIN accepted USING (line_no) ORDER BY line_no"
        ).fetchall()
    ]
    return int(lines), _decide(con, rejected, name, fmt, countries)


def _decide(
    con: duckdb.DuckDBPyConnection,
    rejected: list[tuple[int, bytes]],
    name: str,
    fmt: Format,
    countries: Countries,
) -> list[UsageProblem]:
    """The Python reader's verdict on the lines the SQL left to it: entries or problems."""
    problems: list[UsageProblem] = []
    rescued: list[tuple[Any, ...]] = []
    for number, raw in rejected:
        if fmt == "usage":
            item = parse_line(raw, name, number, countries)
            if isinstance(item, Entry):
                rescued.append((number, *entry_row(item)))
            else:
                problems.append(item)
        else:
            problems.append(UsageProblem(name, number, entries_problem(raw)))
    if rescued:
        marks = ", ".join("?" for _ in range(len(ENTRY_COLUMNS) + 1))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rescued AS SELECT * EXCLUDE (digest) FROM staged LIMIT 0"
        )
        con.executemany(f"INSERT INTO rescued VALUES ({marks})", rescued)
        con.execute(f"INSERT INTO staged SELECT *, {_digest()} AS digest FROM rescued")
    return problems


def _digest() -> str:
    values = ", ".join(f'"{name}"::VARCHAR' for name in ENTRY_COLUMNS)
    return f"md5(to_json([{values}]))"


def ingest_columnar(
    ledger: Ledger,
    path: Path,
    countries: Countries,
    *,
    fmt: Format = "usage",
    store: Path | None = None,
    strict: bool = False,
    whole: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ColumnarReport:
    """Ingest the bulk file at ``path`` into the columnar store; ``on_progress(bytes read)``.

    ``whole``: read the file from its start even if an earlier ingest read part of it.
    """
    from archipel.ledger._ingest import MalformedUsageError

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    folder = store_folder(ledger, store if store is not None else ledger.store)
    if folder is None:
        raise StoreError(
            "the ledger's database is not a SQLite file, so its Parquet partitions need a "
            "folder: give --store DIR (or set ARCHIPEL_LEDGER_DIR)"
        )
    name = str(path)
    path = path.resolve()
    with _locked(folder):
        _record_folder(ledger, folder)
        committed = committed_files(ledger, folder)
        _clean_orphans(folder, set(committed))
        offset, lines_before = (0, 0) if whole else _resume(ledger, path)
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            # rows in any order, but where a table's rowid numbers the lines (_in_order)
            con.execute("SET preserve_insertion_order = false")
            columns = ", ".join(f'"{n}" {kind}' for n, kind in ENTRY_SCHEMA)
            con.execute(f"CREATE TEMP TABLE staged (line_no BIGINT, {columns}, digest VARCHAR)")
            con.execute(
                "CREATE TEMP TABLE countries (provider VARCHAR, region VARCHAR, country VARCHAR)"
            )
            if fmt == "usage" and countries:
                con.executemany(
                    "INSERT INTO countries VALUES (?, ?, ?)",
                    [(p, r, c) for (p, r), c in countries.items()],
                )
            lines = 0
            problems: list[UsageProblem] = []
            line_no = lines_before + 1
            reached = offset
            physical = lines_before
            fast = (
                _stage_fast(con, path, countries)
                if fmt == "usage" and offset == 0 and path.suffix != ".gz"
                else None
            )
            if fast is not None:
                lines, reached, physical = fast
                if on_progress is not None:
                    on_progress(path.stat().st_size)
            total = _read_whole(con, path) if offset == 0 and fast is None else None
            if total is not None:
                size = path.stat().st_size

                def chunk_done(rows: int) -> None:
                    if on_progress is not None:
                        on_progress(size * rows // max(total, 1))

                lines, problems = _stage_whole(con, total, name, fmt, countries, chunk_done)
                con.execute("DROP TABLE lines")
                reached, physical = _complete_lines(path)
            done_whole = fast is not None or total is not None
            for block, done, last in [] if done_whole else _blocks(path, offset):
                read, found = _stage_block(con, block, line_no, name, fmt, countries)
                lines += read
                problems += found
                count = block.count(b"\n")
                line_no += count
                if not last:
                    reached, physical = done, physical + count
                if on_progress is not None:
                    on_progress(done)
            problems.sort(key=lambda p: p.line)
            if strict and problems:
                raise MalformedUsageError(problems[0])
            batch = _next_batch(ledger)
            added, written = _write(con, folder, committed, batch)
        finally:
            con.close()
        head = fingerprint(path, min(HEAD, reached)) if path.suffix != ".gz" else "0:"
        _commit(ledger, folder, batch, written, path, head, reached, physical, added, problems)
    return ColumnarReport(name, lines, added, tuple(problems), batch, offset, fast is not None)


def _complete_lines(path: Path) -> tuple[int, int]:
    """(bytes, lines) of ``path`` up to the end of its last complete line."""
    if path.suffix == ".gz":
        return 0, 0
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - BLOCK))
        tail = f.read()
    cut = tail.rfind(b"\n") + 1
    end = size - len(tail) + cut
    lines = 0
    with path.open("rb") as f:
        remaining = end
        while remaining > 0 and (data := f.read(min(BLOCK, remaining))):
            lines += data.count(b"\n")
            remaining -= len(data)
    return end, lines


def _next_batch(ledger: Ledger) -> int:
    """A batch number above every committed one (microseconds now, as a rule)."""
    with ledger.engine.connect() as connection:
        top = connection.execute(select(func.max(batches.c.id))).scalar() or 0
    return max(int(top) + 1, time.time_ns() // 1000)


def _write(
    con: duckdb.DuckDBPyConnection, folder: Path, committed: list[str], batch: int
) -> tuple[Added, list[tuple[str, str, int]]]:
    """Sort the staged rows against the store; write new rows and corrections as Parquet
    under a temporary folder; returns what was added and the files (relative, source, rows).

    The duplicates are few as a rule, so they are what is computed (the lines dropped: a
    repeat of an earlier line's (source, key, digest), by a hash aggregate, or a row the
    store holds, by a join), and the rest is written straight from ``staged``."""
    from archipel.ledger._store import Added

    staged, keys = con.execute(
        "SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM staged "
        "GROUP BY source, key)"
    ).fetchone()  # type: ignore[misc]
    if committed:
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM staged").fetchall()]
        mine = [f for f in committed if any(f"/source={s}/" in f for s in sources)]
    else:
        mine = []
    dropped = []
    if staged > keys:  # a key on more than one line: repeats of an earlier line's digest?
        dropped.append(
            "SELECT s.line_no FROM staged s JOIN (SELECT source, key, digest, "
            "min(line_no) AS first FROM staged GROUP BY source, key, digest "
            "HAVING count(*) > 1) r ON s.source = r.source AND s.key = r.key "
            "AND s.digest = r.digest AND s.line_no > r.first"
        )
    seen = ""
    if mine:
        listed = ", ".join(_quote(f) for f in mine)
        con.execute(
            "CREATE TEMP TABLE old AS SELECT source, key, digest FROM "
            f"read_parquet([{listed}], hive_partitioning = false)"
        )
        dropped.append(
            "SELECT s.line_no FROM staged s SEMI JOIN old o "
            "ON s.source = o.source AND s.key = o.key AND s.digest = o.digest"
        )
        seen = "ANTI JOIN (SELECT DISTINCT source, key FROM old) o USING (source, key)"
    duplicates, fresh, new = 0, "staged", keys
    if dropped:
        con.execute(f"CREATE TEMP TABLE dropped AS {' UNION '.join(dropped)}")
        duplicates = con.execute("SELECT count(*) FROM dropped").fetchone()[0]  # type: ignore[index]
        if duplicates:
            fresh = "(SELECT * FROM staged ANTI JOIN dropped USING (line_no))"
        new = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT source, key FROM {fresh}) k {seen}"
        ).fetchone()[0]  # type: ignore[index]
    added = Added(int(new), int(staged) - int(duplicates) - int(new), int(duplicates))
    written = _copy(con, fresh, folder, batch) if staged > duplicates else []
    return added, written


#: Parquet compression: zstd at its fastest level writes files half the size of snappy's
#: for the same time (BENCHMARKS.md, "Ledger ingest")
PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
#: at most this many partitions are written by a query each; more by one partitioned write
DIRECT = 4


def _copy(
    con: duckdb.DuckDBPyConnection, rows: str, folder: Path, batch: int
) -> list[tuple[str, str, int]]:
    """Write ``rows`` as Parquet partitions of ``folder`` (through a temporary folder); the
    files written (relative, source, rows).

    A file's rows span a month or two as a rule: each partition is then written by a plain
    query, which is faster than DuckDB's partitioned write (that first copies every row
    into a buffer per partition); with many partitions, one partitioned write is faster."""
    names = ", ".join(f'"{n}"' for n in ENTRY_COLUMNS)
    month = "strftime(start, '%Y-%m')"
    select = f"SELECT {names}, digest, {batch}::BIGINT AS batch, line_no AS line, {month} AS month"
    temporary = folder / f".tmp-{batch}"
    found = con.execute(
        f"SELECT source, {month}, count(*) FROM {rows} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    written: list[tuple[str, str, int]] = []
    if len(found) <= DIRECT and all(_SOURCE_NAME.fullmatch(s) for s, _, _ in found):
        for source, part, count in found:
            relative = Path(f"source={source}", f"month={part}", f"part-{batch}-0.parquet")
            (temporary / relative).parent.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY ({select} FROM {rows} WHERE source = {_quote(source)} "
                f"AND {month} = {_quote(part)}) TO {_quote(str(temporary / relative))} ({PARQUET})"
            )
            written.append((str(relative), source, int(count)))
    else:
        con.execute(
            f"COPY ({select} FROM {rows}) TO {_quote(str(temporary))} ({PARQUET}, "
            "PARTITION_BY (source, month), WRITE_PARTITION_COLUMNS true, "
            f"FILENAME_PATTERN 'part-{batch}-{{i}}')"
        )
        for file in sorted(temporary.glob("source=*/month=*/*.parquet")):
            relative = file.relative_to(temporary)
            count = con.execute(
                f"SELECT count(*) FROM read_parquet({_quote(str(file))})"
            ).fetchone()[0]  # type: ignore[index]
            source = relative.parts[0].removeprefix("source=")
            written.append((str(relative), source, int(count)))
    for name, _, _ in written:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary / name, target)
    shutil.rmtree(temporary, ignore_errors=True)
    return written


def _commit(
    ledger: Ledger,
    folder: Path,
    batch: int,
    written: list[tuple[str, str, int]],
    path: Path,
    head: str,
    reached: int,
    physical: int,
    added: Added,
    problems: list[UsageProblem],
) -> None:
    """Commit the batch: from here on its files are read (before it, never)."""
    try:
        with ledger.engine.begin() as connection:
            connection.execute(
                insert(batches).values(
                    id=batch,
                    path=str(path),
                    size=path.stat().st_size,
                    fingerprint=head,
                    offset=reached,
                    lines=physical,
                    new=added.new,
                    corrections=added.corrections,
                    duplicates=added.duplicates,
                    malformed=len(problems),
                    at_us=time.time_ns() // 1000,
                )
            )
            if written:
                connection.execute(
                    insert(parts),
                    [{"batch": batch, "file": f, "source": s, "rows": n} for f, s, n in written],
                )
    except BaseException:
        for relative, _, _ in written:
            (folder / relative).unlink(missing_ok=True)
        raise
