"""``archipel ledger ingest`` and ``show`` end to end, on a usage file written here.

The file holds three requests, a repeat of the first, a correction of the
third and a cut line. Expected sums, worked out by hand:

- acme: 0.40 EUR (r1) and 1.10 USD (r2); beta: 0.07 EUR (r3 as corrected, not 0.05);
- by country: FR = 0.40 + 0.07 = 0.47 EUR, US = 1.10 USD;
- in EUR at EUR 1 = USD 1.1665 (USD 1 = EUR 0.857265323618, 12 decimals half-even):
  US = 1.10 x 0.857265323618 = 0.9429918559798, kept to the nano-unit: 0.942991856.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archipel.catalog import SNAPSHOT_FILE, load_snapshot, save_snapshot
from archipel.cli import app

RATES = {"USD": Decimal(1), "EUR": Decimal("1.1665")}


def _line(
    request_id: str,
    tenant: str,
    cost: str,
    currency: str,
    where: tuple[str, str],
    tokens: tuple[int, int],
) -> str:
    doc = {
        "ts": 1764547200.5,
        "request_id": request_id,
        "tenant": tenant,
        "data_class": "public",
        "model": "llama",
        "status": 200,
        "replica": f"llama/{where[0]}",
        "provider": where[0],
        "region": where[1],
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "tokens_counted": False,
        "latency_ms": 120.0,
        "attempts": 1,
        "cost": cost,
        "currency": currency,
        "stream": False,
    }
    return json.dumps(doc, separators=(",", ":"))


PARIS, VIRGINIA = ("scaleway", "fr-par"), ("aws", "us-east-1")
LINES = [
    _line("r1", "acme", "0.40", "EUR", PARIS, (100, 10)),
    _line("r2", "acme", "1.10", "USD", VIRGINIA, (200, 20)),
    _line("r3", "beta", "0.05", "EUR", PARIS, (10, 1)),
    _line("r1", "acme", "0.40", "EUR", PARIS, (100, 10)),  # the same record again
    _line("r3", "beta", "0.07", "EUR", PARIS, (10, 2)),  # a correction of r3
    '{"ts":1764547200.5,"request_id":"r4","ten',  # cut short
]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    shipped = load_snapshot(SNAPSHOT_FILE)
    catalog = tmp_path / "catalog.npz"
    save_snapshot(
        shipped.__class__(
            offers=shipped.offers,
            providers=shipped.providers,
            jurisdictions=shipped.jurisdictions,
            comparison_currency="USD",
            fx_rates=RATES,
        ),
        catalog,
    )
    monkeypatch.setenv("ARCHIPEL_CATALOG", str(catalog))
    monkeypatch.setenv("ARCHIPEL_DATA_DIR", str(tmp_path / "home"))

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def usage_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway-usage.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_ingest_then_show_chargeback(run: Any, usage_file: Path) -> None:
    code, out, _err = run("ledger", "ingest", "--usage", str(usage_file), "--json")
    assert code == 1  # done, but a line was skipped
    assert json.loads(out) == {
        "path": str(usage_file),
        "lines": 6,
        "from_byte": 0,
        "new": 3,
        "corrections": 1,
        "duplicates": 1,
        "malformed": [{"line": 6, "message": "not a JSON object (a line cut short or edited?)"}],
    }
    code, out, _ = run("ledger", "show", "--by", "tenant", "--json")
    assert code == 0
    groups = [
        (g["group"], g["cost"], g["currency"], g["entries"], g["input_tokens"], g["output_tokens"])
        for g in json.loads(out)["groups"]
    ]
    assert groups == [
        ("acme", "0.4", "EUR", 1, 100, 10),
        ("acme", "1.1", "USD", 1, 200, 20),
        ("beta", "0.07", "EUR", 1, 10, 2),
    ]


def test_show_by_country_in_one_currency(run: Any, usage_file: Path) -> None:
    run("ledger", "ingest", "--usage", str(usage_file))
    code, out, _ = run("ledger", "show", "--by", "country", "--currency", "eur", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["by"], doc["currency"]) == ("country", "EUR")
    assert [(g["group"], g["cost"], g["currency"], g["from"]) for g in doc["groups"]] == [
        ("FR", "0.47", "EUR", [{"cost": "0.47", "currency": "EUR"}]),
        ("US", "0.942991856", "EUR", [{"cost": "1.1", "currency": "USD"}]),
    ]


def test_a_file_ingested_before_is_read_on_from_where_it_stopped(
    run: Any, usage_file: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run("ledger", "ingest", "--usage", str(usage_file), "--db", db)
    size = usage_file.stat().st_size
    code, out, _ = run("ledger", "ingest", "--usage", str(usage_file), "--db", db)
    assert (code, out) == (0, f"{usage_file}: 0 lines from byte {size:,}: 0 new, "
                           "0 corrections, 0 already in the ledger, 0 malformed\n")  # fmt: skip
    with usage_file.open("a") as f:
        f.write(usage_file.read_text().splitlines()[0].replace('"ts":', '"ts":1,"x":') + "\n")
    code, out, _ = run("ledger", "ingest", "--usage", str(usage_file), "--db", db)
    assert out.startswith(f"{usage_file}: 1 lines from byte {size:,}: ")


def test_ingesting_the_same_file_again_adds_nothing(
    run: Any, usage_file: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run("ledger", "ingest", "--usage", str(usage_file), "--db", db)
    code, out, err = run("ledger", "ingest", "--usage", str(usage_file), "--db", db, "--whole")
    assert code == 1
    assert (
        out
        == f"{usage_file}: 6 lines: 0 new, 0 corrections, 5 already in the ledger, 1 malformed\n"
    )
    assert err == f"skipped {usage_file}:6: not a JSON object (a line cut short or edited?)\n"
    code, out, _ = run("ledger", "show", "--db", db)
    assert code == 0
    assert "0.07 EUR" in out and "0.05" not in out


def test_the_table_says_what_to_do_when_the_ledger_is_empty(run: Any) -> None:
    code, out, _ = run("ledger", "show")
    assert (code, out.strip()) == (
        0,
        "The ledger has no entries yet: `archipel ledger ingest --usage FILE`.",
    )


BAD: list[tuple[str, list[str], str]] = [
    (
        "no such file",
        ["ingest", "--usage", "{tmp}/none.jsonl"],
        "error: --usage {tmp}/none.jsonl: no such file",
    ),
    (
        "strict refuses a malformed file",
        ["ingest", "--usage", "{file}", "--strict", "--whole"],
        "error: {file}:6: not a JSON object",
    ),
    (
        "unknown --by",
        ["show", "--by", "team"],
        "error: --by 'team': choose one of tenant, provider, model, data-class, country",
    ),
    (
        "a currency the catalog has no rate for",
        ["show", "--currency", "GBP"],
        "error: --currency: no exchange rate for currency 'GBP'",
    ),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_status_2(
    run: Any, usage_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    run("ledger", "ingest", "--usage", str(usage_file))
    fill = {"tmp": str(tmp_path), "file": str(usage_file)}
    code, _out, err = run("ledger", *[a.format(**fill) for a in args])
    assert code == 2
    assert err.startswith(message.format(**fill))
    assert err.count("\n") == 1
