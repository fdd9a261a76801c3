"""``plan`` and ``fleet plan`` money: one document shape, named amounts, one comparison currency.

A made-up catalog of two offers, one sold in USD and one in EUR, at the rate
EUR 1 = USD 1.1665. Every expected figure below was worked out by hand from
those prices and that rate, not read from the code:

- 1 / 1.1665 = 0.857265323617659..., so USD 1 = EUR 0.857265323618 (12 decimals,
  half-even);
- aws 10.00 USD per node-hour = EUR 8.57265323618, kept to the nano-unit:
  8.572653236; x 4 nodes = 34.290612944; x 2 hours = 68.581225888;
- scaleway 8.80 EUR per node-hour = USD 10.2652; x 4 = 41.0608; x 2 = 82.1216.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archipel.catalog import build_table, load_snapshot, save_snapshot
from archipel.catalog._sources import OfferRow
from archipel.cli import app
from archipel.core import NANO, CatalogSnapshot

ROWS = [
    ("aws", "us-east-1", "p-usd", 10 * NANO, "USD"),
    ("scaleway", "fr-par", "s-eur", 8_800_000_000, "EUR"),
]
SITES = {("aws", "us-east-1"): "US", ("scaleway", "fr-par"): "FR"}
RATES = {"USD": Decimal(1), "EUR": Decimal("1.1665")}
FLAGS = ["--gpus", "H100:8", "--nodes", "4", "--hours", "2", "--data-class", "public"]
JOB = (
    "name: cli\nkind: batch\nresources: {accelerators: [H100:8], nodes: 4}\n"
    "data: {class: public}\nduration_hours: 2\n"
)


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from archipel.catalog import SNAPSHOT_FILE

    shipped = load_snapshot(SNAPSHOT_FILE)
    rows = [
        OfferRow(p, r, "", i, "H100", 8.0, 81920, 192.0, 2048.0, price, -1, cur, "test")
        for p, r, i, price, cur in ROWS
    ]
    snapshot = CatalogSnapshot(
        offers=build_table(rows, SITES, RATES),
        providers=shipped.providers,
        jurisdictions=shipped.jurisdictions,
        comparison_currency="USD",
        fx_rates=RATES,
    )
    path = tmp_path_factory.mktemp("catalog") / "tiny.npz"
    save_snapshot(snapshot, path)
    return path


@pytest.fixture
def run(tiny_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ARCHIPEL_CATALOG", str(tiny_catalog))

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _money(*placements: tuple[str, ...]) -> list[dict[str, str]]:
    keys = (
        "provider",
        "price_per_node_hour",
        "price_per_placement_hour",
        "total_cost",
        "offer_currency",
        "offer_price_per_node_hour",
        "offer_price_per_placement_hour",
        "offer_total_cost",
    )
    return [dict(zip(keys, p, strict=True)) for p in placements]


AWS_IN_USD = ("aws", "10.00", "40.00", "80.00", "USD", "10.00", "40.00", "80.00")
SCW_IN_USD = ("scaleway", "10.2652", "41.0608", "82.1216", "EUR", "8.80", "35.20", "70.40")
AWS_IN_EUR = (
    "aws",
    "8.572653236",
    "34.290612944",
    "68.581225888",
    "USD",
    "10.00",
    "40.00",
    "80.00",
)
SCW_IN_EUR = ("scaleway", "8.80", "35.20", "70.40", "EUR", "8.80", "35.20", "70.40")
IN_USD = ("USD", {"EUR": "1.1665", "USD": "1"}, _money(AWS_IN_USD, SCW_IN_USD))
IN_EUR = ("EUR", {"EUR": "1", "USD": "0.857265323618"}, _money(AWS_IN_EUR, SCW_IN_EUR))


@pytest.mark.parametrize(
    ("flags", "policy_currency", "expected"),
    [
        ([], None, IN_USD),
        (["--currency", "EUR"], None, IN_EUR),
        (["--currency", "eur"], None, IN_EUR),
        ([], "EUR", IN_EUR),
        (["--currency", "USD"], "EUR", IN_USD),
    ],
    ids=[
        "default: the catalog's USD",
        "--currency EUR",
        "a code in lower case",
        "the policy's currency",
        "--currency over the policy's",
    ],
)
def test_plan_prices_in_the_comparison_currency_with_the_offer_price_beside(
    run: Any, tmp_path: Path, flags: list[str], policy_currency: str | None, expected: Any
) -> None:
    if policy_currency is not None:
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"currency: {policy_currency}\ndata_classes: {{public: {{}}}}\n")
        flags = [*flags, "--policy", str(policy)]
    code, out, err = run("plan", *FLAGS, *flags, "--json")
    assert code == 0, err
    doc = json.loads(out)
    currency, rates, placements = expected
    assert (doc["currency"], doc["exchange_rates"]) == (currency, rates)
    got = [{k: p[k] for k in placements[0]} for p in doc["plans"][0]["placements"]]
    assert got == placements


def test_the_file_and_the_flags_give_the_same_document(run: Any, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    _, from_flags, _ = run("plan", *FLAGS, "--currency", "EUR", "--json")
    _, from_file, _ = run("plan", str(job), "--currency", "EUR", "--json")
    assert json.loads(from_file) == json.loads(from_flags)
    two = tmp_path / "two.yaml"
    two.write_text(JOB + "---\n" + JOB.replace("name: cli", "name: other"))
    code, out, _ = run("plan", str(two), "--json")
    doc = json.loads(out)
    assert code == 0 and list(doc) == list(json.loads(from_flags))
    assert [list(p) for p in doc["plans"]] == [list(json.loads(from_flags)["plans"][0])] * 2


def test_the_budget_is_per_placement_hour_in_the_comparison_currency(run: Any) -> None:
    # aws costs EUR 34.290612944 an hour for 4 nodes: a cap of 34.29 rules it out
    code, out, _ = run("plan", *FLAGS, "--currency", "EUR", "--max-price", "34.29", "--json")
    (plan,) = json.loads(out)["plans"]
    assert code == 1 and plan["placements"] == []
    assert plan["request"]["max_price_per_placement_hour"] == "34.29"
    code, out, _ = run("plan", *FLAGS, "--currency", "EUR", "--max-price", "34.30", "--json")
    assert [p["provider"] for p in json.loads(out)["plans"][0]["placements"]] == ["aws"]


def test_the_table_shows_the_same_figures(run: Any) -> None:
    code, out, _ = run("plan", *FLAGS, "--currency", "EUR")
    assert code == 0
    header = next(line for line in out.splitlines() if "EUR/node-h" in line)
    assert "EUR/h" in header and "EUR total" in header and "offer/node-h" in header
    aws = next(line for line in out.splitlines() if "│ aws " in line)
    for cell in ["8.5727", "34.2906", "68.58", "10.00 USD"]:
        assert cell in aws
    words = " ".join(out.split())  # the line under the table wraps
    assert "ranked by price per hour of the whole placement in EUR" in words
    assert "Offers in USD at 0.857265323618 EUR." in words


@pytest.mark.parametrize(
    ("args", "policy", "message"),
    [
        (["--currency", "GBP"], None, "--currency: no exchange rate for currency 'GBP'"),
        (["--currency", "euros"], None, "--currency: no exchange rate for currency 'EUROS'"),
        ([], "currency: CHF\n", "policy `policy`: currency: no exchange rate for currency 'CHF'"),
        ([], "currency: eur\n", "currency: String should match pattern"),
    ],
    ids=["unknown code", "not a code", "unknown policy currency", "policy currency in lower case"],
)
def test_an_unknown_currency_is_one_line_and_exit_two(
    run: Any, tmp_path: Path, args: list[str], policy: str | None, message: str
) -> None:
    if policy is not None:
        path = tmp_path / "policy.yaml"
        path.write_text(policy + "data_classes: {public: {}}\n")
        args = [*args, "--policy", str(path)]
    for command in (["plan", *FLAGS], ["fleet", "plan", str(_fleet(tmp_path))]):
        code, out, err = run(*command, *args)
        assert (code, out) == (2, "")
        assert message in err and "Traceback" not in err
        if "no exchange rate" in message:  # one line, with the known codes
            assert len(err.strip().splitlines()) == 1
            assert "the catalog knows EUR, USD" in err


def _fleet(tmp_path: Path) -> Path:
    (tmp_path / "job.yaml").write_text(JOB.replace("nodes: 4", "nodes: 1"))
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "name: tiny\nhorizon: {start: 2026-12-01, end: 2027-01-01}\nworkloads: [{file: job.yaml}]\n"
    )
    return fleet


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("USD", ("USD", "10.00", "10.00", "20.00", "USD", "10.00", "10.00")),
        # EUR 8.57265323618 x 2 hours = 17.14530647236: 17.15 in cents
        ("EUR", ("EUR", "8.572653236", "8.572653236", "17.15", "USD", "10.00", "10.00")),
    ],
)
def test_fleet_plan_names_its_money_the_same_way(
    run: Any, tmp_path: Path, currency: str, expected: tuple[str, ...]
) -> None:
    code, out, err = run("fleet", "plan", str(_fleet(tmp_path)), "--currency", currency, "--json")
    assert code == 0, err
    doc = json.loads(out)
    ((placement,),) = [a["placements"] for a in doc["assignments"]]
    got = (
        doc["currency"],
        placement["price_per_node_hour"],
        placement["price_per_placement_hour"],
        placement["total_cost"],
        placement["offer_currency"],
        placement["offer_price_per_node_hour"],
        placement["offer_price_per_placement_hour"],
    )
    assert got == expected
    assert doc["total_cost"] == doc["usage_cost"] == placement["total_cost"]
    assert [p["usage_cost"] for p in doc["providers"]] == [placement["total_cost"]]
