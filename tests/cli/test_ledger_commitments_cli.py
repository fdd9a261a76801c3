"""``archipel ledger commitments|forecast|budgets`` on the shipped example log and spec.

examples/ledger/gateway-usage.jsonl holds, as the ledger keeps it: AWS us-east-1
inference of USD 0.002 (2025-12-01) and Scaleway fr-par inference of EUR 0.00135
(started 2025-11-30, just before midnight). examples/ledger/commitments.yaml
commits USD 0.05 to AWS us-east-1 inference and EUR 0.01 to Scaleway, from
2025-11-01 to 2026-11-01. On 2026-01-01 (November and December whole):

- aws-inference: 0 then 0.002, a flat mean of 0.001 a month; 10 months to
  come: 0.002 + 0.010 = 0.012 at term end, short of 0.05;
- scaleway-eu: 0.00135 then 0, a mean of 0.000675; 0.00135 + 0.00675 = 0.0081,
  short of 0.01 by more than 5%, and so is its one-year ramp minimum.
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

REPO = Path(__file__).resolve().parents[2]
USAGE = REPO / "examples/ledger/gateway-usage.jsonl"
SPEC = REPO / "examples/ledger/commitments.yaml"


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
            fx_rates={"USD": Decimal(1), "EUR": Decimal("1.1665")},
        ),
        catalog,
    )
    monkeypatch.setenv("ARCHIPEL_CATALOG", str(catalog))
    monkeypatch.setenv("ARCHIPEL_DATA_DIR", str(tmp_path / "home"))

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    code, _, _ = invoke("ledger", "ingest", "--usage", str(USAGE))
    assert code == 1  # the example's cut line
    return invoke


def test_commitments_burned_and_forecast(run: Any) -> None:
    code, out, _ = run("ledger", "commitments", str(SPEC), "--today", "2026-01-01", "--json")
    assert code == 1  # alerts raised
    doc = json.loads(out)
    aws, scaleway = doc["commitments"]
    assert (aws["spent"], aws["burned"], aws["at_end"]["mean"]) == ("0.002", "0.0400", "0.012")
    assert (scaleway["spent"], scaleway["at_end"]["mean"]) == ("0.00135", "0.0081")
    assert scaleway["ramp"][0]["status"] == "at risk"
    assert [(a["kind"], a["subject"]) for a in doc["alerts"]] == [
        ("shortfall", "aws-inference"),
        ("shortfall", "scaleway-eu"),
        ("shortfall", "scaleway-eu"),
    ]


def test_the_table_and_the_alerts(run: Any) -> None:
    code, out, _ = run("ledger", "commitments", str(SPEC), "--today", "2026-01-01")
    assert code == 1
    assert "aws-inference" in out and "0.012 USD" in out
    assert "shortfall aws-inference: forecast to spend 0.012 USD" in out


def test_forecast_month_by_month(run: Any) -> None:
    code, out, _ = run("ledger", "forecast", str(SPEC), "--today", "2026-01-01", "--json")
    assert code == 1
    aws = json.loads(out)["commitments"][0]
    assert [m["spent"] for m in aws["months"]] == ["0", "0.002"]
    months = aws["forecast"]["months"]
    assert (months[0]["month"], months[0]["mean"]) == ("2026-01-01", "0.003")
    assert (months[-1]["month"], months[-1]["mean"]) == ("2026-10-01", "0.012")


def test_budgets(run: Any) -> None:
    code, out, _ = run("ledger", "budgets", str(SPEC), "--today", "2025-12-02", "--json")
    doc = json.loads(out)
    # marketing spent USD 0.002 and EUR 0.000147 (x 1.1665 = 0.0001714755) on 1 December:
    # 0.0021714755, to the nano-unit half-even, past its USD 0.002 budget already
    assert doc["budgets"][0]["spent"] == "0.002171476"
    assert [a["severity"] for a in doc["alerts"]] == ["critical"]
    assert code == 1
    code, out, _ = run("ledger", "budgets", str(SPEC), "--today", "2026-03-01")
    assert code == 0
    assert "No alerts." in out


def test_a_fleet_spec_is_a_finops_spec(run: Any) -> None:
    code, out, _ = run(
        "ledger", "commitments", str(REPO / "examples/fleet/lab.yaml"), "--today", "2026-01-01",
        "--json",
    )  # fmt: skip
    assert code == 1  # 0.002 of 3,800,000 USD: a shortfall
    assert [c["name"] for c in json.loads(out)["commitments"]] == ["aws", "azure", "oci"]


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        pytest.param(
            "commitments: [{provider: aws, amount: 1, period: {start: 2026-01-01, "
            "end: 2027-01-01}, ramp: [2]}]",
            [],
            "commitments[0]: ramp: the yearly minimums add up to 2",
            id="bad ramp",
        ),
        pytest.param("budgets: [{name: b, amount: 1}]", [], "exactly one of tenant", id="owner"),
        pytest.param("- a\n- b\n", [], "the document must be a mapping", id="a list"),
        pytest.param("commitments: []", ["--today", "1 May"], "--today '1 May'", id="bad date"),
    ],
)
def test_bad_input_exits_2(
    run: Any, tmp_path: Path, spec: str, args: list[str], message: str
) -> None:
    path = tmp_path / "finops.yaml"
    path.write_text(spec)
    code, _, err = run("ledger", "commitments", str(path), *args)
    assert code == 2
    assert message in err


def test_a_missing_spec_exits_2(run: Any, tmp_path: Path) -> None:
    code, _, err = run("ledger", "budgets", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "no such file" in err


@pytest.mark.parametrize("finops", [None, SPEC], ids=["without --finops", "with --finops"])
def test_the_server_mounts_the_ledger_routes_when_asked(
    run: Any, finops: Path | None, tmp_path: Path
) -> None:
    import inspect

    from archipel.cli._server import Settings, _build, server

    options = {
        name: p.default for name, p in inspect.signature(server).parameters.items()
    }  # the server's defaults, as `archipel server` would start
    options.update(db=f"sqlite:///{tmp_path / 'state.db'}", finops=finops)
    store, _, app, _ = _build(Settings(**options))
    try:
        paths = set(app.openapi()["paths"])
        assert ("/v1/ledger/metrics" in paths) == (finops is not None)
        assert ("/v1/ledger/commitments" in paths) == (finops is not None)
    finally:
        store.close()


def test_the_ledger_routes_read_the_ledger_the_server_meters_into(tmp_path: Path) -> None:
    """`--ledger URL` apart from `--db`: /v1/ledger/* reads that ledger, as the console's
    spend view does, not the control plane's own database."""
    import inspect
    from datetime import UTC, datetime
    from decimal import Decimal

    from fastapi.testclient import TestClient

    from archipel.cli._server import Settings, _build, server
    from archipel.core import Money
    from archipel.ledger import Entry, Ledger

    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(ledger_url)
    ledger.migrate()
    with ledger.transaction() as connection:
        ledger.add(
            connection,
            [
                Entry(
                    source="runs",
                    key="train/1",
                    start=datetime(2026, 2, 3, tzinfo=UTC),
                    end=datetime(2026, 2, 4, tzinfo=UTC),
                    tenant="research",
                    cost=Money(Decimal(250), "USD"),
                    provider="aws",
                    region="us-east-1",
                    gpu_hours=Decimal(25),
                )
            ],
        )
    ledger.close()
    options = {name: p.default for name, p in inspect.signature(server).parameters.items()}
    spec = tmp_path / "finops.yaml"
    spec.write_text(
        "commitments:\n- {name: aws-2026, provider: aws, amount: 1000, currency: USD,\n"
        "   period: {start: 2026-01-01, end: 2027-01-01}}\n"
    )
    options.update(db=f"sqlite:///{tmp_path / 'state.db'}", ledger=ledger_url, finops=spec)
    store, _, app, _ = _build(Settings(**options))
    try:
        admin = {"Authorization": f"Bearer {store.create_token('default', 'admin')}"}
        doc = TestClient(app).get("/v1/ledger/commitments?today=2026-07-01", headers=admin)
        assert doc.status_code == 200, doc.text
        [commitment] = doc.json()["commitments"]
        assert commitment["spent"] == "250"  # the ledger's entry; state.db holds none
    finally:
        store.close()
