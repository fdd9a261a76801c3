"""Ingest, idempotent: what each file adds, and what the ledger holds after it.

Every case runs on SQLite and on a fresh PostgreSQL database. A case is a
sequence of usage files; for each file, what the ingest must report (new,
corrections, duplicates, malformed) and, after the last, the current cost of
each request id. Expected figures are written by hand from the lines.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from archipel.ledger import Added, Ledger, MalformedUsageError, ingest_usage

from .conftest import COUNTRIES, usage, write_usage

A1 = usage("a", cost="0.001")
A2 = usage("a", cost="0.0015")  # a corrected cost for the same request
A3 = usage("a", cost="0.0015", output_tokens=25)  # corrected again: more output tokens
B = usage("b", tenant="beta", cost="0.0000002", currency="USD")
CUT = '{"ts":1764547200.25,"request_id":"c'

# name, files, what each ingest reports (new, corrections, duplicates, malformed), current costs
CASES: list[tuple[str, list[list[Any]], list[tuple[int, int, int, int]], dict[str, str]]] = [
    ("new entries", [[A1, B]], [(2, 0, 0, 0)], {"a": "0.001", "b": "0.0000002"}),
    (
        "the same file twice",
        [[A1, B], [A1, B]],
        [(2, 0, 0, 0), (0, 0, 2, 0)],
        {"a": "0.001", "b": "0.0000002"},
    ),
    (
        "a line repeated in one file",
        [[A1, A1, B]],
        [(2, 0, 1, 0)],
        {"a": "0.001", "b": "0.0000002"},
    ),
    (
        "a correction in a later file",
        [[A1, B], [A2]],
        [(2, 0, 0, 0), (0, 1, 0, 0)],
        {"a": "0.0015", "b": "0.0000002"},
    ),
    (
        "a correction in the same file",
        [[A1, B, A2]],
        [(2, 1, 0, 0)],
        {"a": "0.0015", "b": "0.0000002"},
    ),
    (
        "the original again after its correction",
        [[A1], [A2], [A1]],
        [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0)],
        {"a": "0.0015"},
    ),
    (
        "a chain of corrections",
        [[A1], [A2], [A3]],
        [(1, 0, 0, 0), (0, 1, 0, 0), (0, 1, 0, 0)],
        {"a": "0.0015"},
    ),
    ("a chain of corrections in one file", [[A1, A2, A3, A2]], [(1, 2, 1, 0)], {"a": "0.0015"}),
    (
        "malformed lines skipped, the rest kept",
        [[A1, "{", B, CUT]],
        [(2, 0, 0, 2)],
        {"a": "0.001", "b": "0.0000002"},
    ),
]


@pytest.mark.parametrize("lookup", [5_000, 1], ids=["one look-up", "a look-up per key"])
@pytest.mark.parametrize(
    ("files", "reports", "costs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_ingest(
    ledger: Ledger,
    tmp_path: Path,
    files: list[list[Any]],
    reports: list[tuple[int, int, int, int]],
    costs: dict[str, str],
    lookup: int,
) -> None:
    ledger = Ledger(ledger.url, lookup=lookup)
    for n, (lines, expected) in enumerate(zip(files, reports, strict=True)):
        path = write_usage(tmp_path / f"usage-{n}.jsonl", *lines)
        report = ingest_usage(ledger, path, COUNTRIES)
        added = report.added
        assert (added.new, added.corrections, added.duplicates, len(report.problems)) == expected
        assert report.lines == len(lines)
    current = {e.key: e for e in ledger.current()}
    assert {k: e.cost.amount for k, e in current.items() if e.cost} == {
        k: Decimal(v) for k, v in costs.items()
    }
    ledger.close()


def test_a_correction_keeps_the_entry_it_supersedes(ledger: Ledger, tmp_path: Path) -> None:
    ingest_usage(ledger, write_usage(tmp_path / "1.jsonl", A1), COUNTRIES)
    ingest_usage(ledger, write_usage(tmp_path / "2.jsonl", A3), COUNTRIES)
    with ledger.engine.connect() as c:
        import sqlalchemy as sa

        rows = c.execute(
            sa.text("SELECT cost_micro, output_tokens FROM ledger_entries ORDER BY id")
        )
        assert [tuple(r) for r in rows] == [
            (1000, 20),
            (1500, 25),
        ]  # 0.001 and 0.0015 in micro-units
    (entry,) = ledger.current()
    assert entry.output_tokens == 25


def test_strict_refuses_the_whole_file_at_its_first_malformed_line(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = write_usage(tmp_path / "u.jsonl", A1, B, "{", CUT)
    with pytest.raises(
        MalformedUsageError, match=rf"^{path}:3: not a JSON object .*nothing was ingested"
    ):
        ingest_usage(ledger, path, COUNTRIES, strict=True)
    assert list(ledger.current()) == []


def test_after_fixing_a_skipped_line_ingesting_again_adds_only_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = write_usage(tmp_path / "u.jsonl", A1, "{", B)
    ingest_usage(ledger, path, COUNTRIES)
    write_usage(path, A1, usage("c", cost="0.5"), B)
    report = ingest_usage(ledger, path, COUNTRIES)
    assert report.added == Added(new=1, corrections=0, duplicates=2)


def test_an_entry_reads_back_exactly_as_it_was_written(ledger: Ledger, tmp_path: Path) -> None:
    line = usage("x", cost="123456.000000000000001", latency_ms=0.001, input_tokens=2**40)
    path = write_usage(tmp_path / "u.jsonl", line)
    from archipel.ledger import read_usage

    ((written,), _), *_ = read_usage(path, COUNTRIES)
    ingest_usage(ledger, path, COUNTRIES)
    assert list(ledger.current()) == [written]
    assert written.cost is not None and written.cost.amount == Decimal("123456.000000000000001")


def test_progress_reports_every_byte_of_the_file(ledger: Ledger, tmp_path: Path) -> None:
    path = write_usage(tmp_path / "u.jsonl", *[usage(f"r{i}") for i in range(25)])
    seen: list[int] = []
    ingest_usage(ledger, path, COUNTRIES, on_progress=seen.append)
    assert seen[-1] == path.stat().st_size
    assert seen == sorted(seen)


def test_a_missing_file_is_bad_input(ledger: Ledger, tmp_path: Path) -> None:
    from archipel.core import InputError

    with pytest.raises(InputError, match="no such file"):
        ingest_usage(ledger, tmp_path / "none.jsonl", COUNTRIES)
