"""Reading the gateway's usage log: one entry a good line, one named problem a bad one."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from archipel.core import Money
from archipel.ledger import Entry, UsageProblem, read_usage

from .conftest import COUNTRIES, usage, write_usage


def _read(path: Path) -> list[Entry | UsageProblem]:
    return [item for chunk, _ in read_usage(path, COUNTRIES) for item in chunk]


def test_a_record_becomes_an_entry_with_every_field_read_exactly(tmp_path: Path) -> None:
    line = usage("gw-1", cost="0.000000037500000", ts=1764547200.25, latency_ms=250.5)
    (entry,) = _read(write_usage(tmp_path / "u.jsonl", line))
    assert entry == Entry(
        source="gateway",
        key="gw-1",
        # 1764547200 is 2025-12-01T00:00:00Z; the request took 250.5 ms before its end
        start=datetime(2025, 11, 30, 23, 59, 59, 999500, tzinfo=UTC),
        end=datetime(2025, 12, 1, 0, 0, 0, 250000, tzinfo=UTC),
        tenant="acme",
        cost=Money(Decimal("0.0000000375"), "EUR"),
        workload="llama-3-70b/paris",
        model="llama-3-70b",
        provider="scaleway",
        region="fr-par",
        country="FR",
        data_class="public",
        status=200,
        input_tokens=100,
        output_tokens=20,
    )


def test_a_request_no_replica_answered_costs_nothing_and_has_no_place(tmp_path: Path) -> None:
    line = usage("gw-2", status=503, replica=None, provider=None, region=None, cost="0")
    line["currency"] = ""
    (entry,) = _read(write_usage(tmp_path / "u.jsonl", line))
    assert isinstance(entry, Entry)
    assert (entry.cost, entry.provider, entry.country, entry.status) == (None, None, None, 503)


def test_a_region_missing_from_the_catalog_has_no_country(tmp_path: Path) -> None:
    (entry,) = _read(write_usage(tmp_path / "u.jsonl", usage("gw-3", region="nowhere-1")))
    assert isinstance(entry, Entry)
    assert entry.country is None


def test_fields_a_newer_gateway_adds_are_read_past(tmp_path: Path) -> None:
    (entry,) = _read(write_usage(tmp_path / "u.jsonl", usage("gw-4", cache_tokens=7)))
    assert isinstance(entry, Entry)


MALFORMED: list[tuple[str, Any, str]] = [
    ("cut short", '{"ts":1764547200.25,"request_id":"gw', "not a JSON object"),
    ("not an object", "[1, 2]", "not a JSON object"),
    ("no request id", {**usage("x"), "request_id": None}, "request_id: expected text"),
    ("empty request id", usage(""), "request_id: expected text"),
    ("request id too long", usage("r" * 201), "request_id: expected text of 1 to 200"),
    ("missing tenant", {k: v for k, v in usage("x").items() if k != "tenant"}, "tenant: missing"),
    ("cost as a float", usage("x", cost=0.1), "cost: expected a decimal string"),
    ("cost not a number", usage("x", cost="ten"), "cost: 'ten' is not a decimal number"),
    ("negative cost", usage("x", cost="-1"), "cost: expected a finite amount from 0"),
    ("cost NaN", usage("x", cost="NaN"), "cost: expected a finite amount"),
    (
        "cost too fine",
        usage("x", cost="0.0000000000000001"),
        "cost: '0.0000000000000001' has more than 15 decimals",
    ),
    ("currency not ISO", usage("x", currency="euro"), "currency: expected an ISO 4217 code"),
    ("cost with no currency", usage("x", currency=""), "currency: empty, but the cost is 0.0001"),
    ("negative tokens", usage("x", input_tokens=-1), "input_tokens: expected a whole number"),
    ("tokens as a float", usage("x", output_tokens=1.5), "output_tokens: expected a whole"),
    ("tokens as a bool", usage("x", output_tokens=True), "output_tokens: expected a whole"),
    ("status as text", usage("x", status="200"), "status: expected a whole number"),
    ("time as text", usage("x", ts="2025-12-01"), "ts: expected a number"),
    ("negative latency", usage("x", latency_ms=-3), "latency_ms: expected a finite number"),
    ("provider a number", usage("x", provider=3), "provider: expected text or null"),
    ("time in milliseconds", usage("x", ts=1.7e12), "ts: expected seconds since 1970"),
    ("started before 1970", usage("x", ts=1.0, latency_ms=5000), "latency_ms: the request would"),
]


@pytest.mark.parametrize(
    ("line", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_a_malformed_line_is_a_problem_naming_file_line_and_field(
    tmp_path: Path, line: Any, message: str
) -> None:
    path = write_usage(tmp_path / "u.jsonl", usage("ok-1"), line, usage("ok-2"))
    first, problem, last = _read(path)
    assert isinstance(first, Entry) and isinstance(last, Entry)
    assert isinstance(problem, UsageProblem)
    assert str(problem).startswith(f"{path}:2: {message}")


def test_blank_lines_are_skipped_and_numbering_follows_the_file(tmp_path: Path) -> None:
    path = write_usage(tmp_path / "u.jsonl", "", usage("ok-1"), "   ", "{")
    items = _read(path)
    assert [type(i).__name__ for i in items] == ["Entry", "UsageProblem"]
    assert isinstance(items[1], UsageProblem) and items[1].line == 4
