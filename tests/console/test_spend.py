"""The spend view shows what ``archipel report`` figures, to whom the API shows the ledger.

The oracle for the figures is the command itself, run as a user runs it over the
example year (``archipel ledger ingest --entries examples/ledger/year.jsonl.gz``,
then ``archipel report examples/ledger/finops.yaml --today 2026-11-30 --json``):
the page must print the same numbers, rounded for reading.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from archipel.cli._ledger_commitments import entries_of, load_finops, mount_finops
from archipel.cli._report import report_figures
from archipel.console import PREFIX, Spend
from archipel.controlplane import Store
from archipel.core import CatalogSnapshot, parse_finops

from .conftest import SignIn

UI = PREFIX
ROOT = Path(__file__).resolve().parents[2]
ARCHIPEL = str(Path(sys.executable).with_name("archipel"))
YEAR = ROOT / "examples" / "ledger" / "year.jsonl.gz"
FINOPS = ROOT / "examples" / "ledger" / "finops.yaml"
DAY = date(2026, 11, 30)


def cli(home: Path, *args: str) -> str:
    """``archipel ARGS`` with a data directory of its own (the shipped catalog)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    done = subprocess.run(
        [ARCHIPEL, *args],
        env={**env, "ARCHIPEL_DATA_DIR": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The example year's ledger (its URL) and ``archipel report``'s document of it."""
    home = tmp_path_factory.mktemp("ledger")
    cli(home, "ledger", "ingest", "--entries", str(YEAR))
    doc = json.loads(
        cli(home, "report", str(FINOPS), "--today", DAY.isoformat(), "--json"),
    )
    return f"sqlite:///{home / 'state.db'}", doc


def spend_of(url: str, snapshot: CatalogSnapshot, finops: Path | None) -> Spend:
    """The view's figures as ``archipel server --finops FINOPS`` composes them."""
    spec = load_finops(finops) if finops is not None else parse_finops({}, "<none>")
    return Spend(
        lambda day: report_figures(
            spec, lambda: entries_of(url, migrate=False), snapshot, today=day
        ),
        lambda: DAY,
        None if finops is None else str(finops),
    )


@pytest.fixture
def spend(
    request: pytest.FixtureRequest,
    year: tuple[str, dict[str, Any]],
    snapshot: CatalogSnapshot,
    tmp_path: Path,
) -> Spend | None:
    """The example year with its spec; ``indirect`` params ask for ``"no ledger"`` (a
    server with ``--ledger off``), ``"empty"`` (a migrated ledger with no entry) or
    ``"no spec"`` (no ``--finops``)."""
    kind = getattr(request, "param", "year")
    if kind == "no ledger":
        return None
    if kind == "empty":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        entries_of(url).close()  # migrated, as the server does at its start
        return spend_of(url, snapshot, FINOPS)
    return spend_of(year[0], snapshot, None if kind == "no spec" else FINOPS)


@pytest.fixture
def api_extras(year: tuple[str, dict[str, Any]]) -> Callable[[FastAPI], None]:
    """``/v1/ledger/*`` as ``archipel server --finops`` mounts it: the refusals' oracle."""
    return lambda app: mount_finops(app, FINOPS, year[0])


# --- reading the page --------------------------------------------------------------------


def text(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def rows(page: str, table: str, key: str) -> dict[str, list[str]]:
    """``{data-KEY: [cell texts]}`` of the rows of ``<table class="TABLE">``."""
    body = page.split(f'<table class="{table}">')[1].split("</table>")[0]
    found = re.findall(rf'<tr data-{key}="([^"]*)"[^>]*>(.*?)</tr>', body, re.S)
    return {
        html.unescape(name): [text(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for name, row in found
    }


def cents(value: str) -> str:
    """An exact decimal string as a person reads money: to the cent, half-even."""
    return f"{Decimal(value).quantize(Decimal('0.01'), ROUND_HALF_EVEN):,}"


def pct(value: str) -> str:
    return f"{(Decimal(value) * 100).quantize(Decimal('0.1'), ROUND_HALF_EVEN)}%"


@pytest.fixture
def admin_page(sign_in: SignIn) -> str:
    r = sign_in("acme", "admin").get(f"{UI}/spend")
    assert r.status_code == 200, r.text
    return r.text


# --- who may look ------------------------------------------------------------------------


def test_a_stranger_is_sent_to_the_sign_in_page(app_client: TestClient) -> None:
    r = app_client.get(f"{UI}/spend")
    assert r.status_code == 303 and r.headers["location"] == f"{UI}/login?next={UI}/spend"


@pytest.mark.parametrize(
    ("role", "status", "linked"),
    [
        pytest.param("viewer", 403, False, id="viewer"),
        pytest.param("submitter", 403, False, id="submitter"),
        pytest.param("admin", 200, True, id="admin"),
    ],
)
def test_each_role_sees_spend_as_the_ledger_api_shows_it(
    sign_in: SignIn, store: Store, app_client: TestClient, role: str, status: int, linked: bool
) -> None:
    browser = sign_in("acme", role)
    token = store.create_token("acme", role)
    api = app_client.get("/v1/ledger/alerts", headers={"Authorization": f"Bearer {token}"})
    r = browser.get(f"{UI}/spend")
    assert (r.status_code, api.status_code) == (status, status)
    if status == 403:  # the API's very sentence
        assert html.escape(api.json()["detail"], quote=False) in r.text
    runs = browser.get(f"{UI}/runs").text
    assert (f'href="{UI}/spend"' in runs) is linked


# --- empty states ------------------------------------------------------------------------


@pytest.mark.parametrize("spend", ["no ledger"], indirect=True)
def test_a_server_without_a_ledger_says_how_to_keep_one(sign_in: SignIn) -> None:
    r = sign_in("acme", "admin").get(f"{UI}/spend")
    assert r.status_code == 200
    assert "--ledger off" in r.text and "archipel server --ledger URL --finops FILE" in r.text
    assert "<svg" not in r.text


@pytest.mark.parametrize("spend", ["empty"], indirect=True)
def test_an_empty_ledger_says_how_to_fill_it(sign_in: SignIn) -> None:
    r = sign_in("acme", "admin").get(f"{UI}/spend")
    assert r.status_code == 200
    assert "The ledger has no entries yet" in r.text and "archipel ledger ingest" in r.text
    assert "--usage FILE" in r.text and "<svg" not in r.text


@pytest.mark.parametrize("spend", ["no spec"], indirect=True)
def test_without_a_spec_only_spend_by_provider_and_month_is_shown(sign_in: SignIn) -> None:
    page = sign_in("acme", "admin").get(f"{UI}/spend").text
    assert "--finops FILE" in page
    assert page.count("<svg") == 1 and 'class="by-month"' in page
    for absent in ("commitments", "concentration", "jurisdictions", "budgets", "alerts"):
        assert f'class="{absent}"' not in page


# --- the figures are the report's --------------------------------------------------------


def test_the_totals_and_providers_are_the_reports(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    doc = year[1]
    assert f'data-total="spend">{cents(doc["totals"]["spend"])} USD' in admin_page
    assert f'data-total="entries">{doc["totals"]["entries"]:,}<' in admin_page
    shown = rows(admin_page, "providers", "provider")
    assert list(shown) == [p["name"] for p in doc["providers"]]
    for p in doc["providers"]:
        assert shown[p["name"]] == [
            p["name"],
            cents(p["spend"]),
            cents(p["gpu_hours"]),
            pct(p["spend_share"]),
        ]


def test_the_monthly_figure_is_the_reports(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    doc = year[1]
    providers = [p["name"] for p in doc["providers"]]
    shown = rows(admin_page, "by-month", "month")
    expected: dict[str, list[str]] = {}
    for m in doc["by_month"]:
        line = expected.setdefault(m["month"], [m["month"][:7]] + ["-"] * len(providers))
        line[1 + providers.index(m["provider"] or "unknown")] = cents(m["spend"])
    assert shown == expected


def test_each_commitment_burns_as_in_the_report(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    shown = rows(admin_page, "commitments", "commitment")
    assert list(shown) == [c["name"] for c in year[1]["commitments"]] and len(shown) == 3
    for c in year[1]["commitments"]:
        f = c["forecast"]["at_end"]
        assert shown[c["name"]] == [
            c["name"],
            c["provider"],
            f"{c['start']} to {c['end']}",
            f"{cents(c['amount'])} {c['currency']}",
            cents(c["spent"]),
            pct(c["burned"]),
            cents(c["expected"]),
            f"{cents(f['mean'])} [{cents(f['low'])}, {cents(f['high'])}]",
        ]


def test_concentration_is_measured_against_the_cap_as_in_the_report(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    shown = rows(admin_page, "concentration", "provider")
    for p in year[1]["providers"]:
        over = "over" if p["over_cap"] else "no"
        assert shown[p["name"]] == [
            p["name"],
            pct(p["spend_share"]),
            pct(p["gpu_hours_share"]),
            pct(p["cap"]),
            over,
        ]
    assert "Cap: 45% of spend per provider." in admin_page


def test_jurisdiction_and_cloud_act_shares_are_the_reports(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    doc = year[1]
    body = admin_page.split('<table class="jurisdictions">')[1].split("</table>")[0]
    shown = [
        [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr data-by=[^>]*>(.*?)</tr>", body, re.S)
    ]
    expected = [
        [
            by,
            s["name"],
            cents(s["spend"]),
            pct(s["spend_share"]),
            cents(s["gpu_hours"]),
            pct(s["gpu_hours_share"]),
        ]
        for by, group in (
            ("jurisdiction", doc["jurisdictions"]),
            ("CLOUD Act", doc["cloud_act"]["exposures"]),
        )
        for s in group
        if Decimal(s["spend"]) or Decimal(s["gpu_hours"])
    ]
    assert shown == expected
    exposed = doc["cloud_act"]["exposed"]
    assert f"{pct(exposed['spend_share'])} of spend and" in admin_page


def test_budgets_and_alerts_are_the_reports(
    admin_page: str, year: tuple[str, dict[str, Any]]
) -> None:
    doc = year[1]
    shown = rows(admin_page, "budgets", "budget")
    assert list(shown) == [b["name"] for b in doc["budgets"]]
    for b in doc["budgets"]:
        scope = "tenant" if "tenant" in b else "project"
        cells = shown[b["name"]]
        assert cells[:6] == [
            b["name"],
            f"{scope} {b[scope]}",
            f"{b['period']} from {b['start']}",
            f"{cents(b['amount'])} {b['currency']}",
            cents(b["spent"]),
            pct(b["used"]),
        ]
        assert cells[7] == cents(b["projected"])
    alerts = re.findall(
        r'<li class="alert-(\w+)" data-alert="(\w+)"[^>]*><strong>\w+</strong> (.*?)</li>',
        admin_page,
    )
    assert [(s, k, html.unescape(m)) for s, k, m in alerts] == [
        (a["severity"], a["kind"], a["message"]) for a in doc["alerts"]
    ]
    assert doc["alerts"], "the example year raises alerts (oci short, azure over, health budget)"


def test_the_day_is_in_the_address(sign_in: SignIn, year: tuple[str, dict[str, Any]]) -> None:
    """``?today=`` as on the API: an earlier day, an earlier burn line."""
    browser = sign_in("acme", "admin")
    earlier = browser.get(f"{UI}/spend?today=2026-06-30").text
    later = rows(browser.get(f"{UI}/spend").text, "commitments", "commitment")
    shown = rows(earlier, "commitments", "commitment")
    assert "as of 2026-06-30" in earlier
    for name, cells in shown.items():
        assert Decimal(cells[6].replace(",", "")) < Decimal(later[name][6].replace(",", ""))
    bad = browser.get(f"{UI}/spend?today=yesterday")
    assert bad.status_code == 400 and "today" in bad.text


def test_the_plots_are_the_reports_with_no_inline_style(admin_page: str) -> None:
    """Monthly, three commitments, concentration, jurisdiction: drawn as the report draws
    them, with their styles as attributes (the console's CSP forbids inline styles)."""
    assert admin_page.count("<svg") == 6
    assert "style=" not in admin_page and "<style" not in admin_page
    ids = re.findall(r'\sid="([^"]+)"', admin_page)
    assert len(ids) == len(set(ids))
