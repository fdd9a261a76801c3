"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real
``archipel server`` with two local sites: sign in, watch a run submitted through the API
appear and succeed without a reload, read its logs and placement, cancel another, and
check what a viewer and another tenant may see. No page may log a console error.

One server and one browser for the module (each test opens its own browser context:
its own cookies). The browser is installed by ``scripts/console/browser.sh`` (as root);
without it the tests are skipped with the reason, which fails the run under ``CI=true``.
Set ``ARCHIPEL_CONSOLE_SCREENSHOTS=1`` to write the screenshots docs/console.md shows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.controlplane.test_end_to_end import (
    Server,
    free_port,
    spec,
    submit_example_service,
    wait_until,
)
from tests.profiles import in_ci

from archipel.backends import LocalBackend
from archipel.controlplane import Store

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "console" / "browser.sh"
AXE = Path(__file__).with_name("vendor") / "axe.min.js"  # scripts/console/vendor.sh
#: the impacts axe may not find on any view
SERIOUS = {"serious", "critical"}
SHOTS = ROOT / "docs" / "img"
#: the example year in the server's ledger, and its FinOps spec (docs/report.md)
YEAR = ROOT / "examples" / "ledger" / "year.jsonl.gz"
FINOPS = ROOT / "examples" / "ledger" / "finops.yaml"
#: the example fleet (docs/fleet.md)
LAB = ROOT / "examples" / "fleet" / "lab.yaml"
#: a scenario of half a day of the example portfolio, and the trace it replays
SCENARIO = Path(__file__).with_name("data") / "scenario.yaml"
TRACE = ROOT / "examples" / "simulate" / "portfolio" / "openb-days-120-123.csv"
#: how long a page may take to show what a test waits for (ms): runs take seconds
WAIT_MS = 30_000

pytestmark = pytest.mark.slow


def _unavailable(why: str) -> None:
    message = f"the console's browser tests cannot run: {why}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium's path, installed by scripts/console/browser.sh when missing."""
    try:
        done = subprocess.run(
            ["bash", str(INSTALL)], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"{INSTALL} did not finish: {exc}")
    if done.returncode != 0:
        _unavailable(done.stderr.strip()[-2000:] or f"{INSTALL} exited {done.returncode}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (the dev extra: pip install -e .[dev])")
    with sync_playwright() as p:
        # as root, Chromium refuses to start with its sandbox; the pages are our own
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = p.chromium.launch(executable_path=chromium, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gateway_port() -> int:
    """Where the gateway a test starts listens; the server reads its metrics there."""
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[Server]:
    """The server, with the example year in its ledger and the example FinOps spec, told
    where the gateway's metrics are (no gateway runs until a test starts one)."""
    home = tmp_path_factory.mktemp("console") / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    subprocess.run(
        [
            str(Path(sys.executable).with_name("archipel")),
            "ledger",
            "ingest",
            "--entries",
            str(YEAR),
        ],
        env={**env, "ARCHIPEL_DATA_DIR": str(home)},
        capture_output=True,
        timeout=300,
        check=True,
    )
    metrics = f"http://127.0.0.1:{gateway_port}/metrics"
    extra = ["--finops", str(FINOPS), "--gateway-metrics", metrics]
    s = Server(home, ROOT / "examples/controlplane/sites.yaml", extra=extra)
    s.start()
    yield s
    s.stop()
    for site in ("paris", "frankfurt"):
        folder = s.home / "sites" / site
        if folder.exists():
            LocalBackend(site, folder).kill_all()


def new_token(server: Server, tenant: str, role: str) -> str:
    store = Store(f"sqlite:///{server.home / 'state.db'}")
    try:
        return store.create_token(tenant, role)
    finally:
        store.close()


def api(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{server.port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


SignIn = Callable[[str], "Page"]


@pytest.fixture
def sign_in(browser: Browser, server: Server) -> Iterator[SignIn]:
    """``sign_in(token)``: a fresh browser context signed in through the form, on the runs
    list. Every page's console errors and uncaught exceptions are collected, and the test
    fails if there are any."""
    errors: list[str] = []
    contexts = []

    def signed(token: str) -> Page:
        context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}")
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/ui/")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/runs")
        return page

    yield signed
    for context in contexts:
        context.close()
    assert errors == [], f"the browser logged errors: {errors}"


def admin_token(server: Server) -> str:
    return (server.home / "token").read_text().strip()


def shot(page: Page, name: str) -> None:
    if os.environ.get("ARCHIPEL_CONSOLE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def row(page: Page, run_id: str) -> Any:
    return page.locator(f'tr[data-run="{run_id}"]')


def test_a_run_submitted_through_the_api_appears_and_succeeds_without_a_reload(
    sign_in: SignIn, server: Server
) -> None:
    from playwright.sync_api import expect

    token = admin_token(server)
    page = sign_in(token)
    expect(page.get_by_text("No runs yet")).to_be_visible()
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    with api(server, token) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=5), "name": "quick"}).json()["id"]
    expect(row(page, run_id)).to_be_visible(timeout=WAIT_MS)
    expect(row(page, run_id).locator(".state")).to_have_text("succeeded", timeout=WAIT_MS)
    assert page.evaluate("window.__same_page") is True
    # while nothing changes, a poll sends back the table's ETag and gets a bodiless 304,
    # and the table stays as it is
    with page.expect_response(
        lambda r: "/ui/runs/table" in r.url and r.status == 304, timeout=WAIT_MS
    ):
        pass
    expect(row(page, run_id).locator(".state")).to_have_text("succeeded")
    shot(page, "runs")

    row(page, run_id).get_by_role("link", name="quick").click()
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(page.locator("#logs")).to_contain_text("training done", timeout=WAIT_MS)
    placement = page.locator("section", has=page.locator("#placement-title"))
    expect(placement).to_contain_text("placed on paris (attempt 1)")
    history = page.locator("table.history")
    for state in ("pending", "placing", "launching", "running", "succeeded"):
        expect(history).to_contain_text(state)
    shot(page, "run")


def test_cancelling_a_running_run_from_its_page(sign_in: SignIn, server: Server) -> None:
    from playwright.sync_api import expect

    token = admin_token(server)
    with api(server, token) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=300), "name": "long"}).json()["id"]
    page = sign_in(token)
    page.goto(f"/ui/runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("running", timeout=WAIT_MS)
    expect(page.locator("#logs")).to_contain_text("step 1", timeout=WAIT_MS)
    expect(page.locator("#placement-choice")).to_contain_text("Chosen")
    page.get_by_role("button", name="Cancel this run").click()
    expect(page.locator("#run-state")).to_have_text("cancelled", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Cancel this run")).to_have_count(0)
    with api(server, token) as c:
        assert c.get(f"/v1/runs/{run_id}").json()["state"] == "cancelled"


def test_a_runs_logs_grow_on_its_page_without_a_reload(sign_in: SignIn, server: Server) -> None:
    """The page follows the current attempt's output as it is written (the chain of
    fragments read on from the offset already shown), line after line, then stops."""
    from playwright.sync_api import expect

    token = admin_token(server)
    with api(server, token) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=25), "name": "chatty"}).json()["id"]
    page = sign_in(token)
    page.goto(f"/ui/runs/{run_id}")
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    logs = page.locator("#logs")
    expect(logs).to_contain_text("step 2/25", timeout=WAIT_MS)
    assert "training done" not in logs.inner_text()
    expect(logs).to_contain_text("step 20/25", timeout=WAIT_MS)
    expect(logs).to_contain_text("training done", timeout=WAIT_MS)
    text = logs.inner_text()
    # each line once, in order: what was shown is never asked for again
    steps = [line for line in text.splitlines() if line.startswith("step ")]
    assert steps == [f"step {n}/25 on paris" for n in range(1, 26)], text
    assert page.evaluate("window.__same_page") is True
    # the API serves the very same bytes (GET /v1/runs/{id}/logs)
    with api(server, token) as c:
        assert c.get(f"/v1/runs/{run_id}/logs").json()["data"].strip() == text.strip()


def test_a_viewer_sees_the_run_but_no_cancel_button(sign_in: SignIn, server: Server) -> None:
    from playwright.sync_api import expect

    with api(server, admin_token(server)) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=300), "name": "watched"}).json()["id"]
    page = sign_in(new_token(server, "default", "viewer"))
    page.goto(f"/ui/runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("running", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Cancel this run")).to_have_count(0)
    expect(page.get_by_role("link", name="Sites")).to_have_count(0)
    expect(page.get_by_role("link", name="Spend")).to_have_count(0)
    with api(server, admin_token(server)) as c:
        c.post(f"/v1/runs/{run_id}/cancel")


def test_another_tenant_sees_none_of_its_runs(sign_in: SignIn, server: Server) -> None:
    from playwright.sync_api import expect

    with api(server, admin_token(server)) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=5), "name": "private"}).json()["id"]
    page = sign_in(new_token(server, "globex", "admin"))
    expect(page.get_by_text("No runs yet")).to_be_visible()
    expect(row(page, run_id)).to_have_count(0)
    # fetched with the page's cookies rather than opened: a 404 page logs a console error
    answer = page.request.get(f"/ui/runs/{run_id}")
    assert answer.status == 404 and run_id in answer.text()


def test_the_sites_view_lists_the_two_local_sites(sign_in: SignIn, server: Server) -> None:
    from playwright.sync_api import expect

    page = sign_in(admin_token(server))
    page.get_by_role("link", name="Sites").click()
    expect(page.locator('tr[data-site="paris"]')).to_contain_text("scaleway")
    expect(page.locator('tr[data-site="frankfurt"]')).to_contain_text("DE")
    expect(page.locator('tr[data-site="paris"]')).to_contain_text("healthy")
    shot(page, "sites")


def test_the_plan_form_ranks_placements_and_counts_rejections(
    sign_in: SignIn, server: Server
) -> None:
    from playwright.sync_api import expect

    page = sign_in(new_token(server, "default", "viewer"))
    page.get_by_role("link", name="Plan").click()
    page.get_by_label("Accelerators").fill("H100:8")
    page.get_by_label("Data class").select_option("personal")
    page.get_by_label("Countries").fill("FR,DE")
    page.get_by_role("button", name="Plan").click()
    page.wait_for_url("**/ui/plan?*")
    expect(page.locator('table.placements tr[data-rank="1"]')).to_be_visible()
    for row in page.locator("table.placements tbody tr").all():
        expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^(FR|DE)$"))
    expect(page.locator("table.rejected")).to_contain_text("site in US")
    shot(page, "plan")


def test_the_fleet_form_plans_the_example_lab_as_the_command_does(
    sign_in: SignIn, server: Server
) -> None:
    """``archipel fleet plan examples/fleet/lab.yaml`` uploaded: the same total as the
    command's (tests/console/test_fleet.py compares every figure)."""
    from playwright.sync_api import expect

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("archipel")), "fleet", "plan", str(LAB), "--json"],
        env={**env, "ARCHIPEL_DATA_DIR": str(server.home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    total = Decimal(json.loads(done.stdout)["total_cost"])
    page = sign_in(new_token(server, "default", "viewer"))
    page.get_by_role("link", name="Plan").click()
    page.get_by_role("link", name="plan a fleet file").click()
    page.get_by_label("Fleet file (YAML)").set_input_files(str(LAB))
    page.get_by_role("button", name="Plan the fleet").click()
    expect(page.locator("#fleet-verdict")).to_have_text("feasible", timeout=WAIT_MS)
    expect(page.locator('[data-total="total_cost"]')).to_have_text(f"{total:,.2f} USD")
    expect(page.locator("table.providers")).to_contain_text("oci")
    shot(page, "fleet")


def test_the_spend_view_draws_the_example_year(sign_in: SignIn, server: Server) -> None:
    """The report's figures and plots under the console's CSP: an inline style refused
    would be a console error, which fails the test."""
    from playwright.sync_api import expect

    page = sign_in(admin_token(server))
    page.get_by_role("link", name="Spend").click()
    page.wait_for_url("**/ui/spend")
    page.get_by_label("As of").fill("2026-11-30")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/ui/spend?today=2026-11-30")
    for name in ("aws-2025", "azure-2025", "oci-2025"):
        expect(page.locator(f'tr[data-commitment="{name}"]')).to_be_visible()
    expect(page.locator('li[data-alert="overrun"]')).to_contain_text("azure-2025")
    expect(page.locator('tr[data-budget="health-monthly"]')).to_be_visible()
    expect(page.locator("figure svg")).to_have_count(6)
    shot(page, "spend")


def test_an_admin_runs_a_simulation_and_its_page_shows_the_results_without_a_reload(
    sign_in: SignIn, server: Server
) -> None:
    """The scenario and its trace uploaded, the server's worker runs it, the page shows the
    strategies' table and the two plots when it ends (an inline style refused by the CSP
    would be a console error, which fails the test)."""
    from playwright.sync_api import expect

    page = sign_in(admin_token(server))
    page.get_by_role("link", name="Simulations").click()
    page.wait_for_url("**/ui/simulations")
    page.get_by_label("Scenario (YAML)").set_input_files(str(SCENARIO))
    page.get_by_label("Trace (openb CSV)").set_input_files(str(TRACE))
    page.get_by_role("button", name="Run the simulation").click()
    page.wait_for_url(re.compile(r".*/ui/simulations/s-[0-9a-f]{12}$"))
    page.evaluate("window.__same_page = true")
    expect(page.locator("#simulation-state")).to_have_text("succeeded", timeout=120_000)
    assert page.evaluate("window.__same_page") is True
    for strategy in ("single-provider", "multi-cloud"):
        expect(page.locator(f'tr[data-strategy="{strategy}"]')).to_be_visible()
    expect(page.locator("figure svg")).to_have_count(2)
    shot(page, "simulation")
    # a viewer of the tenant sees it at the same address, and has no upload form
    address = page.url
    viewer = sign_in(new_token(server, "default", "viewer"))
    viewer.goto(address)
    expect(viewer.locator("#simulation-state")).to_have_text("succeeded")
    viewer.get_by_role("navigation", name="Views").get_by_role("link", name="Simulations").click()
    expect(viewer.get_by_role("button", name="Run the simulation")).to_have_count(0)
    # another tenant does not
    other = sign_in(new_token(server, "globex", "admin"))
    assert other.request.get(address).status == 404


def test_the_services_view_shows_each_replicas_traffic_from_the_gateway_without_a_reload(
    browser: Browser, sign_in: SignIn, server: Server, gateway_port: int, tmp_path: Path
) -> None:
    """The example service on the two sites, then the gateway following the control plane:
    the page first says the gateway cannot be read, then shows each replica up with the
    requests sent through the gateway, live."""
    from playwright.sync_api import expect

    from archipel.gateway import hash_key

    token = admin_token(server)
    with api(server, token) as c:
        [group] = submit_example_service(c)

        def running() -> list[str] | None:
            runs = c.get("/v1/runs", params={"group": group}).json()
            ids = [r["id"] for r in runs if r["state"] == "running"]
            return ids if len(ids) == 2 else None

        replicas = wait_until(running, 60, "both replicas to run")
    page = sign_in(token)
    gateway = None
    try:
        page.get_by_role("link", name="Services").click()
        for run_id in replicas:
            expect(page.locator(f'tr[data-replica="{run_id}"]')).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#gateway-status")).to_contain_text("could not be read")
        page.evaluate("window.__same_page = true")
        config = tmp_path / "gateway.yaml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "listen": {"host": "127.0.0.1", "port": gateway_port},
                    "metering": {"path": str(tmp_path / "usage.jsonl")},
                    "control_plane": {"url": f"http://127.0.0.1:{server.port}", "interval": 0.2},
                    "health_checks": {"interval": 0.5, "timeout": 1},
                    "tenants": {
                        "clinic": {"key_sha256": [hash_key("sk-c")], "data_class": "health"}
                    },
                }
            )
        )
        gateway = subprocess.Popen(
            [str(Path(sys.executable).with_name("archipel")), "gateway", "--config", str(config)],
            env={**os.environ, "ARCHIPEL_DATA_DIR": str(server.home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cells = page.locator("td[data-requests]")
        expect(page.locator("#gateway-status")).to_contain_text(
            "Traffic from the gateway", timeout=WAIT_MS
        )
        expect(page.locator("table.service")).not_to_contain_text("down", timeout=WAIT_MS)
        expect(page.get_by_text("up", exact=True)).to_have_count(2, timeout=WAIT_MS)
        sent = 6
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=10) as gw:
            for _ in range(sent):
                answer = gw.post(
                    "/v1/chat/completions",
                    headers={"Authorization": "Bearer sk-c"},
                    json={"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert answer.status_code == 200, answer.text

        def counted() -> bool:
            values = [int(c.get_attribute("data-requests") or 0) for c in cells.all()]
            return sum(values) == sent

        wait_until(counted, WAIT_MS / 1000, "the page to show the requests sent")
        assert [c.get_attribute("data-errors") for c in page.locator("td[data-errors]").all()] == [
            "0",
            "0",
        ]
        assert page.evaluate("window.__same_page") is True
        shot(page, "services")
        # axe on the view with its traffic (its script is injected: this context bypasses
        # the CSP)
        audit = browser.new_context(base_url=f"http://127.0.0.1:{server.port}", bypass_csp=True)
        try:
            checked = audit.new_page()
            checked.goto("/ui/login")
            checked.get_by_label("API token").fill(token)
            checked.get_by_role("button", name="Sign in").click()
            checked.wait_for_url("**/ui/runs")
            checked.goto("/ui/services")
            expect(checked.locator("td[data-requests]")).to_have_count(2)
            assert [v for v in _axe(checked) if v["impact"] in SERIOUS] == []
        finally:
            audit.close()
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        with api(server, token) as c:
            for run_id in replicas:
                c.post(f"/v1/runs/{run_id}/cancel")


def test_signing_out_returns_to_the_sign_in_page(sign_in: SignIn, server: Server) -> None:
    from playwright.sync_api import expect

    page = sign_in(admin_token(server))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    page.goto("/ui/runs")
    expect(page.get_by_label("API token")).to_be_visible()


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(" ")).slice(0, 3),
  }));
}"""


def test_axe_finds_no_serious_violation_on_any_view(
    browser: Browser, sign_in: SignIn, server: Server
) -> None:
    """axe-core (vendored in tests/console/vendor) on each view. Its script is injected,
    which the console's CSP forbids: this context alone bypasses the CSP."""
    token = admin_token(server)
    with api(server, token) as c:
        run_id = c.post("/v1/runs", json={**spec(steps=5), "name": "audited"}).json()["id"]
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}", bypass_csp=True)
    try:
        page = context.new_page()
        found = {}
        page.goto("/ui/login")
        found["login"] = _axe(page)
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/runs")
        # the harness itself: a page with a known critical violation is caught
        page.set_content('<html lang="en"><title>t</title><main><img src="data:,"></main>')
        assert {"image-alt"} <= {v["id"] for v in _axe(page) if v["impact"] == "critical"}
        for name, path in [
            ("runs", "/ui/runs"),
            ("empty runs", "/ui/runs?state=preempted"),
            ("run", f"/ui/runs/{run_id}"),
            ("sites", "/ui/sites"),
            ("services", "/ui/services"),
            ("plan", "/ui/plan?gpus=H100:8&class=personal&countries=FR,DE"),
            ("spend", "/ui/spend?today=2026-11-30"),
            ("simulations", "/ui/simulations"),
        ]:
            page.goto(path)
            found[name] = _axe(page)
        # a simulation's page with its results, when an earlier test ran one
        ran = page.locator('table.simulations a[href*="/ui/simulations/s-"]')
        if ran.count():
            page.goto(ran.first.get_attribute("href") or "")
            found["simulation"] = _axe(page)
    finally:
        context.close()
    serious = {view: [v for v in vs if v["impact"] in SERIOUS] for view, vs in found.items()}
    assert not {view: vs for view, vs in serious.items() if vs}


def _axe(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    return violations
