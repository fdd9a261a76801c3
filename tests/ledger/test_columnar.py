"""The columnar ingest against the row path it replaces for bulk files.

The row path (``ingest_usage`` into ``ledger_entries``, one Python-checked line
at a time) is the reference: for any sequence of usage files, with repeated
lines, corrections, any order and malformed lines of every kind, the columnar
path must report the same figures and the same problems for each file, and
leave the same current entries. The table-driven cases restate the row path's
own cases (tests/ledger/test_ingest.py) with their hand-written figures.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.core import InputError
from archipel.ledger import Ledger, MalformedUsageError, ingest_usage
from archipel.ledger._columnar import StoreError, ingest_columnar

from .conftest import COUNTRIES, usage, write_usage
from .test_ingest import CASES


def _ledger(folder: Path, name: str) -> Ledger:
    ledger = Ledger(f"sqlite:///{folder / name}.db", store=folder / f"{name}-parquet")
    ledger.migrate()
    return ledger


def _current(ledger: Ledger) -> list[tuple[Any, ...]]:
    connection = ledger.frame()
    try:
        return sorted(
            connection.execute("SELECT * FROM entries").fetchall(), key=lambda r: (r[0], r[1])
        )
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("files", "reports", "costs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_ingest_cases(
    tmp_path: Path,
    files: list[list[Any]],
    reports: list[tuple[int, int, int, int]],
    costs: dict[str, str],
) -> None:
    ledger = _ledger(tmp_path, "columnar")
    for n, (lines, expected) in enumerate(zip(files, reports, strict=True)):
        path = write_usage(tmp_path / f"usage-{n}.jsonl", *lines)
        report = ingest_columnar(ledger, path, COUNTRIES)
        added = report.added
        assert (added.new, added.corrections, added.duplicates, len(report.problems)) == expected
        assert report.lines == len(lines)
    current = {row[1]: row for row in _current(ledger)}
    assert {k: row[17] for k, row in current.items() if row[17] is not None} == {
        k: Decimal(v) for k, v in costs.items()
    }
    ledger.close()


# -- the differential property ------------------------------------------------------------------

KEYS = ["a", "b", "c", "d"]

#: field values the gateway never writes, each of which the row path rejects or reads oddly
ODD_VALUES: list[tuple[str, Any]] = [
    ("cost", "1e-3"),
    ("cost", " 0.5"),
    ("cost", "1_000"),
    ("cost", "0.10000000000000000"),
    ("cost", "0.0000000000000001"),
    ("cost", "-1"),
    ("cost", "NaN"),
    ("cost", "1000000001"),
    ("cost", 0.5),
    ("currency", ""),
    ("currency", "usd"),
    ("currency", None),
    ("ts", "1764547200"),
    ("ts", 1764547200),
    ("ts", 1764547200000),
    ("ts", -1.0),
    ("ts", True),
    ("ts", 1.5e9),
    ("latency_ms", 1e30),
    ("latency_ms", 0.0005),
    ("latency_ms", 2.5),
    ("status", 200.0),
    ("status", -1),
    ("status", None),
    ("input_tokens", False),
    ("input_tokens", 2**40),
    ("output_tokens", "20"),
    ("tenant", ""),
    ("tenant", "x" * 201),
    ("tenant", "é" * 150),
    ("tenant", "tab\there"),
    ("tenant", "ünïcode"),
    ("model", None),
    ("provider", None),
    ("region", None),
    ("region", "us-east-1"),
    ("provider", "aws"),
    ("replica", None),
    ("replica", 7),
    ("request_id", 12),
    ("data_class", ["public"]),
]

ODD_LINES = [
    "{",
    "[1, 2]",
    "null",
    '"text"',
    '{"ts":1764547200.25,"request_id":"c',
    '{"ts": NaN}',
    "   ",
    "{}",
]


@st.composite
def lines(draw: st.DrawFn, clean: bool = False) -> dict[str, Any] | str:
    """A usage line; ``clean``: a good record as the gateway (or another writer) writes it."""
    kinds = ["good"] if clean else ["good", "good", "good", "odd-field", "missing", "odd-line"]
    kind = draw(st.sampled_from(kinds))
    if kind == "odd-line":
        return draw(st.sampled_from(ODD_LINES))
    fields: dict[str, Any] = {
        "cost": draw(st.sampled_from(["0.001", "0.0015", "0", "12.5", "0.000000000000001"])),
        "output_tokens": draw(st.integers(0, 3)),
        "ts": draw(st.sampled_from([1764547200.25, 1764547200.123456, 1759276800.0])),
        "currency": draw(st.sampled_from(["EUR", "USD"])),
    }
    record = usage(draw(st.sampled_from(KEYS)), **fields)
    if kind == "odd-field":
        name, value = draw(st.sampled_from(ODD_VALUES))
        record[name] = value
    elif kind == "missing":
        del record[draw(st.sampled_from(sorted(record)))]
    if draw(st.booleans()):
        return record
    # also written as other writers would: spaces, a trailing comma, a repeated field
    styles = ["spaced"] if clean else ["spaced", "trailing-comma", "repeated", "escaped"]
    style = draw(st.sampled_from(styles))
    text = json.dumps(record, separators=(",", ":"))
    if style == "spaced":
        return json.dumps(record, indent=None)
    if style == "trailing-comma":
        return text[:-1] + ",}"
    if style == "repeated":
        return text[:-1] + ',"tenant":"other"}'
    return json.dumps(record, ensure_ascii=True).replace("acme", "\\u0061cme")


@settings(
    max_examples=examples(60),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    files=st.lists(
        st.booleans().flatmap(lambda clean: st.tuples(
            st.just(clean), st.lists(lines(clean), max_size=12)
        )),
        min_size=1,
        max_size=4,
    )
)  # fmt: skip
def test_the_columnar_path_agrees_with_the_row_path(files: list[tuple[bool, list[Any]]]) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows, columns = _ledger(folder, "rows"), _ledger(folder, "columns")
        for n, (clean, content) in enumerate(files):
            path = write_usage(folder / f"usage-{n}.jsonl", *content)
            expected = ingest_usage(rows, path, COUNTRIES)
            got = ingest_columnar(columns, path, COUNTRIES)
            assert got.added == expected.added
            assert [str(p) for p in got.problems] == [str(p) for p in expected.problems]
            assert got.lines == expected.lines
            # a file of good records takes the fast path; one with a bad line never does
            if clean:
                assert got.fast
            if expected.problems:
                assert not got.fast
        assert _current(columns) == _current(rows)
        rows.close()
        columns.close()


# -- the fast path: which files it takes, and the same results either way ----------------------

GOOD = json.dumps(usage("a"), separators=(",", ":"))
NULLS = json.dumps(usage("b", replica=None, provider=None, region=None), separators=(",", ":"))
NO_REPLICA = json.dumps({k: v for k, v in usage("c").items() if k != "replica"})

# name, the file's lines, whether the fast path takes it
FAST_CASES: list[tuple[str, list[str], bool]] = [
    ("as the gateway writes", [GOOD, NULLS], True),
    ("spaces after separators", [json.dumps(usage("a")), json.dumps(usage("b"))], True),
    ("text beyond ASCII", [json.dumps(usage("a", tenant="ünïcode"), ensure_ascii=False)], True),
    ("an empty file", [], True),
    ("a key missing beside a null one", [NULLS, NO_REPLICA], False),
    ("a nested object holds the missing key", [NULLS, NO_REPLICA[:-1] + ',"x":{"replica":1}}'],
     False),
    ("a blank line (line numbers)", [GOOD, "", NULLS], False),
    ("a trailing comma in a field read past", [GOOD[:-1] + ',"x":[1,]}'], False),
    ("NaN in a field read past", [GOOD[:-1] + ',"x":nan}'], False),
    ("-Infinity in a field read past", [GOOD[:-1] + ',"x":-Infinity}'], False),
    ("a number past a double in a field read past", [GOOD[:-1] + ',"x":1e400}'], False),
    ("a number of 400 digits in a field read past", [GOOD[:-1] + ',"x":1' + "0" * 400 + "}"],
     False),
    ("a byte order mark", ["\ufeff" + GOOD], False),
    ("an escape", [GOOD.replace("acme", "\\u0061cme")], False),
    ("a carriage return", [GOOD + "\r", NULLS], False),
    ("a float status", [GOOD.replace('"status":200', '"status":200.0')], False),
    ("a number as text", [GOOD.replace('"output_tokens":20', '"output_tokens":"20"')], False),
    ("a text as a number", [GOOD.replace('"request_id":"a"', '"request_id":12')], False),
    ("a key twice", [GOOD[:-1] + ',"tenant":"other"}'], False),
    ("not an object", [GOOD, "[1, 2]"], False),
]  # fmt: skip


#: name, the file's bytes, whether the fast path takes it: what DuckDB reads as lines and
#: JSON differently from Python, or not at all
FAST_BYTES: list[tuple[str, bytes, bool]] = [
    ("the last line without its newline", f"{GOOD}\n{NULLS}".encode(), True),
    ("a tab between fields", GOOD.replace(',"tenant"', ',\t"tenant"').encode() + b"\n", True),
    ("a repeat and a correction (line numbers)",
     "\n".join([GOOD, GOOD, GOOD.replace('"cost":"0.0001"', '"cost":"0.0002"'), GOOD]).encode(),
     True),
    ("a byte that is not UTF-8", GOOD.encode().replace(b"acme", b"ac\xffme") + b"\n", False),
    ("a raw tab in a text", GOOD.replace("acme", "ac\tme").encode() + b"\n", False),
    ("a raw control byte in a text", GOOD.replace("acme", "ac\x01me").encode() + b"\n", False),
    ("a byte order mark in a text", GOOD.replace("acme", "ac\ufeffme").encode() + b"\n", False),
    ("lines ended by CR LF", f"{GOOD}\r\n{NULLS}\r\n".encode(), False),
    ("a line of white space (line numbers)", f"{GOOD}\n \t \n{NULLS}\n".encode(), False),
    ("a carriage return alone ends no line for Python",
     f"{GOOD}\r{NULLS}\n".encode(), False),
]  # fmt: skip


def _same_either_way(folder: Path, data: bytes, fast: bool) -> None:
    rows, columns = _ledger(folder, "rows"), _ledger(folder, "columns")
    path = folder / "usage.jsonl"
    path.write_bytes(data)
    expected = ingest_usage(rows, path, COUNTRIES)
    got = ingest_columnar(columns, path, COUNTRIES)
    assert got.fast is fast
    assert (got.added, got.lines) == (expected.added, expected.lines)
    assert [str(p) for p in got.problems] == [str(p) for p in expected.problems]
    assert _current(columns) == _current(rows)
    rows.close()
    columns.close()


@pytest.mark.parametrize(
    ("content", "fast"), [c[1:] for c in FAST_CASES], ids=[c[0] for c in FAST_CASES]
)
def test_the_fast_path_takes_only_files_it_can_vouch_for(
    tmp_path: Path, content: list[str], fast: bool
) -> None:
    _same_either_way(tmp_path, "".join(f"{line}\n" for line in content).encode(), fast)


@pytest.mark.parametrize(
    ("data", "fast"), [c[1:] for c in FAST_BYTES], ids=[c[0] for c in FAST_BYTES]
)
def test_bytes_duckdb_reads_otherwise_are_left_to_the_line_path(
    tmp_path: Path, data: bytes, fast: bool
) -> None:
    _same_either_way(tmp_path, data, fast)


# -- atomicity, strictness, the store's folder ----------------------------------------------------


def test_strict_refuses_the_whole_file_and_writes_nothing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, "l")
    path = write_usage(tmp_path / "u.jsonl", usage("a"), "{", usage("b"))
    with pytest.raises(MalformedUsageError, match=rf"^{path}:2: not a JSON object"):
        ingest_columnar(ledger, path, COUNTRIES, strict=True)
    assert _current(ledger) == []
    assert list((tmp_path / "l-parquet").glob("**/*.parquet")) == []


def test_files_no_committed_batch_lists_are_never_read_and_are_cleaned_up(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path, "l")
    ingest_columnar(ledger, write_usage(tmp_path / "1.jsonl", usage("a")), COUNTRIES)
    # an ingest stopped after moving its file into place, before its commit
    orphan_folder = tmp_path / "l-parquet" / "source=gateway" / "month=2025-12"
    (orphan, *_) = orphan_folder.glob("*.parquet")
    stray = orphan_folder / "part-1-0.parquet"
    stray.write_bytes(orphan.read_bytes())
    (tmp_path / "l-parquet" / ".tmp-2").mkdir()
    assert len(_current(ledger)) == 1
    ingest_columnar(ledger, write_usage(tmp_path / "2.jsonl", usage("b")), COUNTRIES)
    assert not stray.exists()
    assert not (tmp_path / "l-parquet" / ".tmp-2").exists()
    assert [row[1] for row in _current(ledger)] == ["a", "b"]


def test_another_folder_than_the_recorded_one_is_refused(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, "l")
    ingest_columnar(ledger, write_usage(tmp_path / "1.jsonl", usage("a")), COUNTRIES)
    with pytest.raises(StoreError, match="recorded at its first ingest"):
        ingest_columnar(
            ledger, write_usage(tmp_path / "2.jsonl", usage("b")), COUNTRIES, store=tmp_path
        )


def test_a_database_without_a_file_needs_a_folder(tmp_path: Path) -> None:
    ledger = Ledger("sqlite://")
    ledger.migrate()
    with pytest.raises(InputError, match="--store DIR"):
        ingest_columnar(ledger, write_usage(tmp_path / "1.jsonl", usage("a")), COUNTRIES)


# -- the native entries format ----------------------------------------------------------------

RUN = {
    "source": "runs",
    "key": "pretrain-1/2026-01-03/aws",
    "start": "2026-01-03T00:00:00Z",
    "end": "2026-01-04T01:00:00+01:00",
    "tenant": "research",
    "project": "frontier",
    "workload": "pretrain-1",
    "model": None,
    "accelerator": "H100",
    "provider": "aws",
    "region": "us-east-1",
    "country": "US",
    "data_class": "public",
    "status": None,
    "gpu_hours": "1536",
    "input_tokens": 0,
    "output_tokens": 0,
    "cost": "6144.00",
    "currency": "USD",
}
MINIMAL = {"source": "runs", "key": "k2", "start": "2026-01-03T00:00:00Z",
           "end": "2026-01-03T00:00:00Z", "tenant": "lab"}  # fmt: skip

# name, line, the problem's message (None: the line is an entry)
ENTRY_LINES: list[tuple[str, dict[str, Any] | str, str | None]] = [
    ("a full entry", RUN, None),
    ("only the required fields", MINIMAL, None),
    ("no tenant", {**MINIMAL, "tenant": None}, "tenant: missing (every entry has it)"),
    ("a float cost", {**MINIMAL, "cost": 1.5, "currency": "USD"}, "cost: expected a decimal"),
    ("a cost without currency", {**MINIMAL, "cost": "1.5"}, "currency: expected an ISO 4217"),
    ("a time without zone", {**MINIMAL, "start": "2026-01-03T00:00:00"}, "start: expected an"),
    ("a source with capitals", {**MINIMAL, "source": "Runs"}, "source: expected a lower-case"),
    ("not JSON", "{", "not a JSON object (a line cut short or edited?)"),
]


@pytest.mark.parametrize(
    ("line", "message"), [c[1:] for c in ENTRY_LINES], ids=[c[0] for c in ENTRY_LINES]
)
def test_entries_lines(tmp_path: Path, line: dict[str, Any] | str, message: str | None) -> None:
    ledger = _ledger(tmp_path, "l")
    path = write_usage(tmp_path / "e.jsonl", line)
    report = ingest_columnar(ledger, path, {}, fmt="entries")
    if message is None:
        assert (report.added.new, report.problems) == (1, ())
    else:
        assert report.added.new == 0
        (problem,) = report.problems
        assert str(problem).startswith(f"{path}:1: {message}")


def test_an_entry_reads_back_as_written_and_gzip_is_read_too(tmp_path: Path) -> None:
    import gzip
    from datetime import datetime

    ledger = _ledger(tmp_path, "l")
    path = tmp_path / "e.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(RUN) + "\n" + json.dumps({**RUN, "cost": "6000"}) + "\n")
    report = ingest_columnar(ledger, path, {}, fmt="entries")
    assert (report.added.new, report.added.corrections) == (1, 1)
    (row,) = _current(ledger)
    assert row == (
        "runs", "pretrain-1/2026-01-03/aws", datetime(2026, 1, 3), datetime(2026, 1, 4),
        "research", "frontier", "pretrain-1", None, "H100", "aws", "us-east-1", "US", "public",
        None, Decimal(1536), 0, 0, Decimal(6000), "USD",
    )  # fmt: skip


# -- reading on from where the last ingest stopped --------------------------------------------


def test_a_grown_file_is_read_on_and_a_rewritten_one_whole(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, "l")
    path = write_usage(tmp_path / "u.jsonl", usage("a"), usage("b"))
    first = ingest_columnar(ledger, path, COUNTRIES)
    size = path.stat().st_size
    with path.open("a") as f:
        f.write(json.dumps(usage("c")) + "\n" + '{"cut')
    grown = ingest_columnar(ledger, path, COUNTRIES)
    # the cut last line is reported, and read again next time (it may be complete then)
    assert (grown.start_offset, grown.lines, grown.added.new) == (size, 2, 1)
    assert [p.line for p in grown.problems] == [4]
    assert ingest_columnar(ledger, path, COUNTRIES).start_offset > size
    write_usage(path, usage("d"), usage("a"))  # rotated: another file under the same name
    rotated = ingest_columnar(ledger, path, COUNTRIES)
    assert (rotated.start_offset, rotated.added.new, rotated.added.duplicates) == (0, 1, 1)
    assert first.added.new == 2
    assert [row[1] for row in _current(ledger)] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("months", [1, 2, 6], ids=["one month", "two months", "six months"])
def test_one_file_a_partition_for_each_month_the_rows_start_in(tmp_path: Path, months: int) -> None:
    # a request each month of 2026, completed at noon on the 15th (a few written by one
    # query each, more by one partitioned write): the same rows and totals either way
    ends = [datetime(2026, m, 15, 12, tzinfo=UTC).timestamp() for m in range(1, months + 1)]
    lines = [usage(f"k{n}", ts=end, latency_ms=250.0) for n, end in enumerate(ends)]
    path = write_usage(tmp_path / "u.jsonl", *lines, *lines)  # then each again: duplicates
    rows, columns = _ledger(tmp_path, "rows"), _ledger(tmp_path, "columns")
    expected = ingest_usage(rows, path, COUNTRIES)
    got = ingest_columnar(columns, path, COUNTRIES)
    assert got.fast
    assert got.added == expected.added
    assert (got.added.new, got.added.duplicates) == (months, months)
    assert _current(columns) == _current(rows)
    files = sorted(
        str(f.relative_to(tmp_path / "columns-parquet"))
        for f in (tmp_path / "columns-parquet").glob("source=*/month=*/*.parquet")
    )
    assert files == [
        f"source=gateway/month=2026-{m:02d}/part-{got.batch}-0.parquet"
        for m in range(1, months + 1)
    ]
    rows.close()
    columns.close()


#: usage("a") as the stored digest covers it: the MD5 of its columns' texts as a JSON list
#: (written out by hand: the format every stored partition's digests have)
DIGEST_A = hashlib.md5(
    b'["gateway","a","2025-12-01 00:00:00","2025-12-01 00:00:00.25","acme",null,'
    b'"llama-3-70b/paris","llama-3-70b",null,"scaleway","fr-par","FR","public","200",'
    b'"0.000000000000000","100","20","0.000100000000000","EUR"]'
).hexdigest()


def _stored(folder: Path) -> list[tuple[str, str]]:
    con = duckdb.connect()
    try:
        return sorted(
            con.execute(
                "SELECT key, digest FROM read_parquet(?, hive_partitioning = false)",
                [str(folder / "source=*" / "month=*" / "*.parquet")],
            ).fetchall()
        )
    finally:
        con.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "line path"])
def test_the_stored_digest_is_the_md5_of_the_columns_as_a_json_list(
    tmp_path: Path, fast: bool
) -> None:
    ledger = _ledger(tmp_path, "l")
    odd = [] if fast else ["{"]  # a line the fast path leaves to the line path
    report = ingest_columnar(ledger, write_usage(tmp_path / "u.jsonl", usage("a"), *odd), COUNTRIES)
    assert report.fast is fast
    assert _stored(tmp_path / "l-parquet") == [("a", DIGEST_A)]


def test_partitions_an_earlier_version_wrote_are_read_and_their_rows_found_again(
    tmp_path: Path,
) -> None:
    # partitions as the first columnar store wrote them (snappy, written by DuckDB's
    # partitioned write): a later ingest finds their rows as duplicates, and corrects them
    ledger = _ledger(tmp_path, "l")
    path = write_usage(tmp_path / "u.jsonl", usage("a"), usage("b"))
    ingest_columnar(ledger, path, COUNTRIES)
    con = duckdb.connect()
    for file in (tmp_path / "l-parquet").glob("source=*/month=*/*.parquet"):
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{file}')) TO '{file}.old' "
            "(FORMAT parquet, COMPRESSION snappy)"
        )
        file.with_name(file.name + ".old").replace(file)
        codecs = con.execute(
            f"SELECT DISTINCT compression FROM parquet_metadata('{file}')"
        ).fetchall()
        assert codecs == [("SNAPPY",)]
    con.close()
    again = ingest_columnar(ledger, path, COUNTRIES, whole=True)
    assert (again.added.new, again.added.corrections, again.added.duplicates) == (0, 0, 2)
    fixed = write_usage(tmp_path / "v.jsonl", usage("a", cost="0.0002"), usage("c"))
    later = ingest_columnar(ledger, fixed, COUNTRIES)
    assert (later.added.new, later.added.corrections, later.added.duplicates) == (1, 1, 0)
    costs = {row[1]: row[17] for row in _current(ledger)}
    assert costs == {"a": Decimal("0.0002"), "b": Decimal("0.0001"), "c": Decimal("0.0001")}
    ledger.close()


def test_on_every_database_the_folder_is_recorded_and_found_again(
    ledger: Ledger, tmp_path: Path
) -> None:
    from archipel.ledger import Dimension, totals

    ledger = Ledger(ledger.url, store=tmp_path / "parts")
    ingest_columnar(ledger, write_usage(tmp_path / "u.jsonl", usage("a"), usage("b")), COUNTRIES)
    ledger.close()
    again = Ledger(ledger.url)  # no folder given: the recorded one
    (total,) = totals(again, Dimension.tenant)
    assert (total.group, total.cost, total.entries) == ("acme", Decimal("0.0002"), 2)
    again.close()
