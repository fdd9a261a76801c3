"""``archipel report`` end to end: a ledger on SQLite, a FinOps spec, the shipped registry.

Two entries, worked out by hand, in USD at EUR 1 = USD 1.1665:
aws (US, CLOUD Act "yes" in the registry): 1,000 USD and 250 GPU-hours in January;
scaleway (FR, "no"): 500 EUR = 583.25 USD and 250 GPU-hours in February.
Total 1,583.25 USD; aws holds 1000 / 1583.25 = 0.631612 of spend, above a 0.6 cap.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archipel.catalog import SNAPSHOT_FILE, load_snapshot, save_snapshot
from archipel.cli import app
from archipel.core import Money
from archipel.ledger import Entry, Ledger

RATES = {"USD": Decimal(1), "EUR": Decimal("1.1665")}
SPEC = """\
currency: USD
commitments:
- name: aws-2026
  provider: aws
  amount: 12000
  currency: USD
  period: {start: 2026-01-01, end: 2027-01-01}
  ramp: [10000]
budgets:
- {name: radiology-monthly, tenant: radiology, amount: 1000, currency: EUR, period: month,
   alert_at: [0.5, 1.0]}
concentration: {max_share: 0.6, measure: spend}
"""


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
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    jan, feb = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 2, 5, tzinfo=UTC)
    with ledger.transaction() as connection:
        ledger.add(
            connection,
            [
                Entry(
                    "runs",
                    "a1",
                    jan,
                    jan,
                    "research",
                    Money(Decimal(1000), "USD"),
                    workload="pretrain",
                    provider="aws",
                    region="us-east-1",
                    country="US",
                    gpu_hours=Decimal(250),
                ),
                Entry(
                    "runs",
                    "s1",
                    feb,
                    feb,
                    "radiology",
                    Money(Decimal(500), "EUR"),
                    workload="finetune",
                    provider="scaleway",
                    region="fr-par",
                    country="FR",
                    gpu_hours=Decimal(250),
                ),
            ],
        )
    ledger.close()
    return url


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "finops.yaml"
    path.write_text(SPEC)
    return path


def test_json_document(run: Any, db: str, spec: Path) -> None:
    code, out, _ = run("report", str(spec), "--db", db, "--json", "--today", "2026-02-20")
    assert code == 0
    doc = json.loads(out)
    assert doc["totals"] == {
        "spend": "1583.25",
        "gpu_hours": "500",
        "input_tokens": 0,
        "output_tokens": 0,
        "entries": 2,
    }
    assert [(p["name"], p["spend"], p["spend_share"], p["over_cap"]) for p in doc["providers"]] == [
        ("aws", "1000", "0.631612", True),
        ("scaleway", "583.25", "0.368388", False),
    ]
    eu = next(j for j in doc["jurisdictions"] if j["name"] == "EU/EEA")
    assert (eu["spend"], eu["gpu_hours_share"]) == ("583.25", "0.5")
    assert doc["cloud_act"]["exposed"]["spend"] == "1000"
    (commitment,) = doc["commitments"]
    assert [m["spent"] for m in commitment["months"]] == ["1000", "1000"]
    assert commitment["ramp"] == [{"by": "2027-01-01", "minimum": "10000"}]
    (budget,) = doc["budgets"]
    assert (budget["spent"], budget["used"]) == ("500", "0.5")  # February, in euros
    kinds = [a["kind"] for a in doc["alerts"]]
    assert "concentration" in kinds and "budget" in kinds
    assert not (Path("report.html")).exists()  # --json alone writes no page


def test_html_and_csv_files(run: Any, db: str, spec: Path, tmp_path: Path) -> None:
    out, tables = tmp_path / "r.html", tmp_path / "tables"
    code, _, err = run("report", str(spec), "--db", db, "-o", str(out), "--csv", str(tables))
    assert code == 0, err
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert sorted(p.name for p in tables.iterdir()) == [
        "alerts.csv",
        "budgets.csv",
        "by_month.csv",
        "cloud_act.csv",
        "commitments.csv",
        "jurisdictions.csv",
        "providers.csv",
        "tenants.csv",
        "workloads.csv",
    ]
    with (tables / "tenants.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["name", "spend_USD", "gpu_hours"]
    assert rows[1][:3] == ["research", "1000", "250"]


def test_default_output_is_report_html(run: Any, db: str, tmp_path: Path) -> None:
    code, _, err = run("report", "--db", db, "--currency", "eur")
    assert code == 0, err
    assert "in EUR" in (tmp_path / "report.html").read_text()


BAD = [
    ("a date that is not one", ["--today", "20-02-2026"], "is not a date: write YYYY-MM-DD"),
    ("a currency without a rate", ["--currency", "XYZ"], "no exchange rate for currency 'XYZ'"),
    ("no such spec", ["missing.yaml"], "missing.yaml: no such file"),
]


@pytest.mark.parametrize(("name", "args", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_and_says_what_to_change(
    run: Any, db: str, name: str, args: list[str], message: str
) -> None:
    code, _, err = run("report", "--db", db, *args)
    assert code == 2
    assert message in err
    assert not Path("report.html").exists()  # nothing half-written


def test_an_invalid_spec_names_the_field(run: Any, db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "budgets:\n- {name: b, tenant: t, project: p, amount: 1, currency: EUR}\n"
        "concentration: {max_share: 2}\n"
    )
    code, _, err = run("report", str(bad), "--db", db)
    assert code == 2
    assert "budgets[0]: give exactly one of tenant or project" in err
    assert "concentration.max_share" in err


def test_other_commands_do_not_import_matplotlib_or_duckdb() -> None:
    code = (
        "import sys\n"
        "from archipel.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('matplotlib', 'duckdb') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_the_frame_holds_the_ledgers_entries_exactly(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.migrate()
    t0 = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    tricky = Entry("gateway", "r,1", t0, t0, 'a "quoted", tenant', None, status=502)
    exact = Entry(
        "runs",
        "r2",
        t0,
        t0,
        "b",
        Money(Decimal("0.000000000000001"), "EUR"),
        provider="scaleway",
        country="FR",
        gpu_hours=Decimal("1.5"),
        input_tokens=7,
    )
    with ledger.transaction() as connection:
        ledger.add(connection, [tricky, exact])
    frame = ledger.frame()
    ledger.close()
    rows = frame.execute(
        'SELECT key, "start", tenant, provider, status, gpu_hours, input_tokens, cost, currency '
        "FROM entries ORDER BY key"
    ).fetchall()
    assert rows == [
        (
            "r,1",
            datetime(2026, 1, 1, 0, 0, 0, 250_000),
            'a "quoted", tenant',
            None,
            502,
            Decimal(0),
            0,
            None,
            None,
        ),
        (
            "r2",
            datetime(2026, 1, 1, 0, 0, 0, 250_000),
            "b",
            "scaleway",
            None,
            Decimal("1.5"),
            7,
            Decimal("0.000000000000001"),
            "EUR",
        ),
    ]
