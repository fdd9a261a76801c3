"""Reading providers' cost files: a FOCUS file (CSV or Parquet) and an AWS CUR 2.0 file.

The samples under tests/ledger/data are written by hand in the shape of the
providers' own exports (FOCUS 1.0 columns as AWS and Azure write them; CUR 2.0
column names); every expected entry below is read off those files by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tests.ledger.focus_ledger import COMMITMENTS, facts, ledger_connection

from archipel.catalog import load_regions
from archipel.core import InputError
from archipel.ledger import Entry, Ledger, MalformedUsageError
from archipel.ledger._focus import export_focus
from archipel.ledger._focus_import import (
    CostFile,
    Kind,
    ingest_cost_file,
    provider_id,
    read_cost_file,
)
from archipel.ledger._usage import UsageProblem

DATA = Path(__file__).with_name("data")
FOCUS = DATA / "focus-sample.csv"
CUR = DATA / "cur2-sample.csv"


def _read(path: Path, kind: Kind) -> tuple[list[Entry], list[str]]:
    entries: list[Entry] = []
    problems: list[str] = []
    for chunk, _ in read_cost_file(path, kind, load_regions(), chunk=2):
        entries += [e for e in chunk if isinstance(e, Entry)]
        problems += [str(p) for p in chunk if isinstance(p, UsageProblem)]
    return entries, problems


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (source, start, end, tenant, cost, currency, workload, provider, region, country)
EXPECTED_FOCUS = [
    ("focus:aws", _t("2026-01-03T00:00"), _t("2026-01-03T01:00"), "444455556666",
     Decimal("98.32"), "USD", "i-0a1b2c3d4e5f60718", "aws", "us-east-1", "US"),
    ("focus:aws", _t("2026-01-03T01:00"), _t("2026-01-03T02:00"), "444455556666",
     Decimal("98.32"), "USD", "i-0a1b2c3d4e5f60718", "aws", "us-east-1", "US"),
    ("focus:aws", _t("2026-01-03T00:00"), _t("2026-01-04T00:00"), "444455556666",
     Decimal("0.023"), "USD", "checkpoints-bucket", "aws", "us-east-1", "US"),
    ("focus:aws", _t("2026-01-01T00:00"), _t("2026-02-01T00:00"), "444455556666",
     Decimal("-12.50"), "USD", None, "aws", None, None),
    # EffectiveCost (the reservation's amortized cost), not BilledCost 27.84
    ("focus:azure", _t("2026-01-04T00:00"), _t("2026-01-05T00:00"), "/subscriptions/0b1c",
     Decimal("22.272"), "EUR",
     "/subscriptions/0b1c/resourceGroups/imaging/providers/Microsoft.Compute/virtualMachines/"
     "finetune-vm", "azure", "swedencentral", "SE"),
]  # fmt: skip

FOCUS_PROBLEMS = [
    f"{FOCUS}:7: EffectiveCost: 'abc' is not a decimal number",
    f"{FOCUS}:8: ChargePeriodStart: empty (every row has it)",
]


def _fields(e: Entry) -> tuple[Any, ...]:
    assert e.cost is not None
    return (e.source, e.start, e.end, e.tenant, e.cost.amount, e.cost.currency, e.workload,
            e.provider, e.region, e.country)  # fmt: skip


def test_a_focus_file_becomes_entries_and_row_problems() -> None:
    entries, problems = _read(FOCUS, Kind.focus)
    assert [_fields(e) for e in entries] == EXPECTED_FOCUS
    assert problems == FOCUS_PROBLEMS


def test_row_keys_are_distinct_and_the_same_on_every_read() -> None:
    first, _ = _read(FOCUS, Kind.focus)
    again, _ = _read(FOCUS, Kind.focus)
    keys = [e.key for e in first]
    assert keys == [e.key for e in again]
    assert len(set(keys)) == len(keys)
    assert keys[0].startswith("2026-01-03T00:00:00Z/")


def test_two_rows_with_one_identity_are_both_kept(tmp_path: Path) -> None:
    lines = FOCUS.read_text(encoding="utf-8").splitlines()
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([lines[0], lines[1], lines[1]]) + "\n", encoding="utf-8")
    entries, problems = _read(twice, Kind.focus)
    assert problems == []
    assert [e.key.rsplit("#", 1)[-1] for e in entries][1] == "2"
    assert len({e.key for e in entries}) == 2


def test_a_parquet_focus_file_reads_as_the_csv_does(tmp_path: Path) -> None:
    parquet = tmp_path / "focus.parquet"
    typed = tmp_path / "good.csv"
    lines = FOCUS.read_text(encoding="utf-8").splitlines()
    typed.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")  # the good rows
    duckdb.connect().execute(
        f"COPY (SELECT * REPLACE (CAST(BilledCost AS DECIMAL(20, 10)) AS BilledCost, "
        f"CAST(EffectiveCost AS DECIMAL(20, 10)) AS EffectiveCost, "
        f"CAST(ChargePeriodStart AS TIMESTAMPTZ) AS ChargePeriodStart, "
        f"CAST(ChargePeriodEnd AS TIMESTAMPTZ) AS ChargePeriodEnd) "
        f"FROM read_csv('{typed}', all_varchar = true)) TO '{parquet}' (FORMAT parquet)"
    )
    from_parquet, problems = _read(parquet, Kind.focus)
    assert problems == []
    assert [_fields(e) for e in from_parquet] == EXPECTED_FOCUS


EXPECTED_CUR = [
    ("cur", _t("2026-01-03T00:00"), _t("2026-01-03T01:00"), "444455556666",
     Decimal("98.32"), "USD", "i-0a1b2c3d4e5f60718", "aws", "us-east-1", "US"),
    ("cur", _t("2026-01-03T01:00"), _t("2026-01-03T02:00"), "444455556666",
     Decimal("98.32"), "USD", "i-0a1b2c3d4e5f60718", "aws", "us-east-1", "US"),
    ("cur", _t("2026-01-03T00:00"), _t("2026-01-04T00:00"), "777788889999",
     Decimal("251.8224"), "USD", "i-0c0ffee0c0ffee000", "aws", "eu-central-1", "DE"),
]  # fmt: skip


def test_a_cur_file_becomes_entries_keyed_by_its_line_item_id() -> None:
    entries, problems = _read(CUR, Kind.cur)
    assert [_fields(e) for e in entries] == EXPECTED_CUR
    assert entries[0].key == "yq3s2f5k7x2wq6vn4mhb/2026-01-03T00:00:00Z/2026-01-04T00:00:00Z"
    assert problems == [
        f"{CUR}:5: line_item_currency_code: expected an ISO 4217 code such as USD, got None"
    ]


@pytest.mark.parametrize(
    ("path", "kind", "message"),
    [(CUR, Kind.focus, "not a FOCUS file: no column ChargePeriodStart"),
     (FOCUS, Kind.cur, "not a CUR file: no column line_item_usage_start_date"),
     (DATA / "missing.csv", Kind.focus, "no such file")],
    ids=["cur-as-focus", "focus-as-cur", "missing"],
)  # fmt: skip
def test_a_file_of_the_wrong_kind_is_refused_whole(path: Path, kind: Kind, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _read(path, kind)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("AWS", "aws"), ("Amazon Web Services", "aws"), ("Microsoft", "azure"),
     ("Google Cloud", "gcp"), ("Oracle", "oci"), ("OVHcloud", "ovhcloud"),
     ("Some New Cloud", "some-new-cloud")],
)  # fmt: skip
def test_provider_names_become_registry_ids(name: str, expected: str) -> None:
    assert provider_id(name, {"ovhcloud": "ovhcloud"}) == expected


def test_ingesting_a_file_twice_adds_it_once(ledger: Ledger) -> None:
    source = CostFile(FOCUS, Kind.focus)
    first = ingest_cost_file(ledger, source, load_regions())
    again = ingest_cost_file(ledger, source, load_regions())
    assert (first.added.new, first.added.duplicates, len(first.problems)) == (5, 0, 2)
    assert (again.added.new, again.added.duplicates) == (0, 5)
    assert first.lines == 7
    assert len(list(ledger.current())) == 5


def test_strict_refuses_the_file_at_its_first_bad_row(ledger: Ledger) -> None:
    with pytest.raises(MalformedUsageError, match=r"focus-sample\.csv:7: EffectiveCost"):
        ingest_cost_file(ledger, CostFile(FOCUS, Kind.focus), load_regions(), strict=True)
    assert list(ledger.current()) == []


def test_an_exported_focus_file_reads_back_with_the_same_money(tmp_path: Path) -> None:
    export_focus(ledger_connection(), tmp_path, facts(), COMMITMENTS)
    entries, problems = _read(tmp_path / "cost_and_usage.csv", Kind.focus)
    assert problems == []
    by_workload = {e.workload: e for e in entries}
    eval3 = by_workload["eval-3"]
    assert eval3.cost is not None
    assert (eval3.cost.amount, eval3.cost.currency) == (Decimal("435.2"), "USD")
    assert (eval3.tenant, eval3.provider, eval3.gpu_hours) == ("research", "azure", 64)
    assert by_workload["replica-eu-1"].input_tokens == 1200
    assert by_workload["replica-eu-1"].data_class == "health"
