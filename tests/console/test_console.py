"""The console as a browser without JavaScript sees it: sign-in, sessions, CSRF, roles,
the runs list's filters, sort and pages, a run's page, cancel, and the sites."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from archipel.backends import FakeBackend
from archipel.console import PREFIX
from archipel.console._sites import jurisdiction
from archipel.controlplane import Reconciler, Store
from archipel.controlplane._models import RunRow
from archipel.core import CloudActExposure, ProviderFacts, RunState, Workload

from .conftest import SPEC, Clock, SignIn, csrf_of

UI = PREFIX


def submit(
    store: Store, tenant: str = "acme", name: str = "train", data_class: str = "personal"
) -> str:
    doc = {**SPEC, "name": name, "data": {"class": data_class}}
    return store.submit(tenant, Workload.model_validate(doc)).id


def run_ids(html: str) -> list[str]:
    """The runs a list shows, top to bottom."""
    return re.findall(r'<tr data-run="([^"]+)"', html)


# --- signing in and out ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/runs", "/runs/table", "/runs/r-123", "/sites", "/sites/table"])
def test_every_view_sends_a_stranger_to_the_sign_in_page(app_client: TestClient, path: str) -> None:
    r = app_client.get(UI + path)
    assert r.status_code == 303
    assert r.headers["location"] == f"{UI}/login?next={UI}{path}"


def test_a_poll_without_a_session_asks_htmx_to_load_the_sign_in_page(
    app_client: TestClient,
) -> None:
    r = app_client.get(f"{UI}/runs/table", headers={"HX-Request": "true"})
    assert r.status_code == 204
    assert r.headers["HX-Redirect"].startswith(f"{UI}/login")


def test_signing_in_exchanges_the_token_for_an_httponly_strict_cookie(
    app_client: TestClient, store: Store
) -> None:
    form = app_client.get(f"{UI}/login?next={UI}/sites")
    assert form.status_code == 200 and 'type="password"' in form.text
    token = store.create_token("acme", "viewer")
    r = app_client.post(
        f"{UI}/login", data={"token": token, "csrf": csrf_of(form.text), "next": f"{UI}/sites"}
    )
    assert r.status_code == 303 and r.headers["location"] == f"{UI}/sites"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("archipel_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and f"Path={UI}/" in cookie
    assert token.split("_", 2)[2] not in cookie  # the secret never leaves the server again
    page = app_client.get(f"{UI}/runs")
    assert page.status_code == 200 and "tenant <strong>acme</strong>" in page.text


@pytest.mark.parametrize(
    ("token", "status", "says"),
    [
        pytest.param("", 401, "unknown, malformed or revoked", id="empty"),
        pytest.param("arch_0000_nope", 401, "unknown, malformed or revoked", id="unknown"),
        pytest.param("hello", 401, "unknown, malformed or revoked", id="malformed"),
    ],
)
def test_a_bad_token_is_refused_on_the_form_with_a_sentence(
    app_client: TestClient, token: str, status: int, says: str
) -> None:
    form = app_client.get(f"{UI}/login")
    r = app_client.post(f"{UI}/login", data={"token": token, "csrf": csrf_of(form.text)})
    assert r.status_code == status
    assert says in r.text and 'role="alert"' in r.text
    assert "archipel_session" not in r.headers.get("set-cookie", "")


def test_a_sign_in_without_the_forms_csrf_token_is_refused(
    app_client: TestClient, store: Store
) -> None:
    app_client.get(f"{UI}/login")
    token = store.create_token("acme", "admin")
    r = app_client.post(f"{UI}/login", data={"token": token, "csrf": "forged"})
    assert r.status_code == 403 and "out of date" in r.text


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example/", "//evil.example/x", "/v1/runs", f"{UI}\\..\\x"],
    ids=["absolute", "scheme-relative", "outside the console", "backslash"],
)
def test_signing_in_never_leads_off_the_console(
    app_client: TestClient, store: Store, next_path: str
) -> None:
    form = app_client.get(f"{UI}/login")
    token = store.create_token("acme", "admin")
    r = app_client.post(
        f"{UI}/login", data={"token": token, "csrf": csrf_of(form.text), "next": next_path}
    )
    assert r.headers["location"] == f"{UI}/runs"


def test_signing_out_needs_the_csrf_token_and_ends_the_session(sign_in: SignIn) -> None:
    browser = sign_in()
    page = browser.get(f"{UI}/runs")
    assert browser.post(f"{UI}/logout", data={"csrf": "forged"}).status_code == 403
    assert browser.post(f"{UI}/logout", data={}).status_code == 403
    out = browser.post(f"{UI}/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == f"{UI}/login"
    assert browser.get(f"{UI}/runs").status_code == 303


def test_a_session_ends_when_its_token_is_revoked(sign_in: SignIn, store: Store) -> None:
    browser = sign_in("acme", "admin")
    assert browser.get(f"{UI}/runs").status_code == 200
    with store.session() as s:
        from archipel.controlplane._models import TokenRow

        token_id = s.query(TokenRow).filter_by(tenant="acme").one().id
    store.revoke_token(token_id)
    assert browser.get(f"{UI}/runs").status_code == 303


def test_a_session_ends_after_twelve_hours(sign_in: SignIn, clock: Clock) -> None:
    browser = sign_in()
    clock.now += 12 * 3600 - 1
    assert browser.get(f"{UI}/runs").status_code == 200
    clock.now += 1
    assert browser.get(f"{UI}/runs").status_code == 303


def test_a_forged_session_cookie_is_no_session(app_client: TestClient, sign_in: SignIn) -> None:
    browser = sign_in()
    real = browser.cookies["archipel_session"]
    body, mac = real.split(".")
    app_client.cookies.set("archipel_session", f"{body}.{mac[:-2]}AA", path=f"{UI}/")
    assert app_client.get(f"{UI}/runs").status_code == 303


def test_the_api_still_needs_a_bearer_token_with_a_console_session(sign_in: SignIn) -> None:
    browser = sign_in("acme", "admin")
    assert browser.get("/v1/runs").status_code == 401


def test_pages_forbid_inline_scripts_and_framing(sign_in: SignIn) -> None:
    r = sign_in().get(f"{UI}/runs")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text


# --- roles and tenants ----------------------------------------------------------------


def test_a_tenant_sees_only_its_own_runs(sign_in: SignIn, store: Store) -> None:
    mine = submit(store, "acme", "mine")
    theirs = submit(store, "globex", "theirs")
    browser = sign_in("acme", "admin")
    assert run_ids(browser.get(f"{UI}/runs").text) == [mine]
    r = browser.get(f"{UI}/runs/{theirs}")
    assert r.status_code == 404 and theirs in r.text
    assert browser.get(f"{UI}/runs/{theirs}/logs").status_code == 404
    page = browser.get(f"{UI}/runs/{mine}")
    cancel = browser.post(f"{UI}/runs/{theirs}/cancel", data={"csrf": csrf_of(page.text)})
    assert cancel.status_code == 404
    assert store.get(theirs).state is RunState.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("role", "sees_button", "cancel_status", "sites_status"),
    [
        pytest.param("viewer", False, 403, 403, id="viewer"),
        pytest.param("submitter", True, 303, 403, id="submitter"),
        pytest.param("admin", True, 303, 200, id="admin"),
    ],
)
def test_each_role_may_do_in_the_console_what_it_may_do_on_the_api(
    sign_in: SignIn,
    store: Store,
    role: str,
    sees_button: bool,
    cancel_status: int,
    sites_status: int,
) -> None:
    run_id = submit(store)
    browser = sign_in("acme", role)
    page = browser.get(f"{UI}/runs/{run_id}")
    assert ("Cancel this run" in page.text) is sees_button
    r = browser.post(f"{UI}/runs/{run_id}/cancel", data={"csrf": csrf_of(page.text)})
    assert r.status_code == cancel_status
    expected = RunState.CANCELLED if cancel_status == 303 else RunState.PENDING
    assert store.get(run_id).state is expected  # type: ignore[union-attr]
    assert browser.get(f"{UI}/sites").status_code == sites_status
    assert ('href="/ui/sites"' in page.text) is (sites_status == 200)


@pytest.mark.parametrize(
    "data", [{}, {"csrf": ""}, {"csrf": "forged"}], ids=["missing", "empty", "forged"]
)
def test_a_cancel_without_the_sessions_csrf_token_is_refused(
    sign_in: SignIn, store: Store, data: dict[str, str]
) -> None:
    run_id = submit(store)
    browser = sign_in("acme", "admin")
    r = browser.post(f"{UI}/runs/{run_id}/cancel", data=data)
    assert r.status_code == 403 and "reload the page" in r.text
    assert store.get(run_id).state is RunState.PENDING  # type: ignore[union-attr]


def test_another_sessions_csrf_token_does_not_do(sign_in: SignIn, store: Store) -> None:
    run_id = submit(store)
    first, second = sign_in("acme", "admin"), sign_in("acme", "admin")
    other = csrf_of(second.get(f"{UI}/runs/{run_id}").text)
    assert first.post(f"{UI}/runs/{run_id}/cancel", data={"csrf": other}).status_code == 403


# --- the runs list ----------------------------------------------------------------------


def _aged(store: Store, run_ids_oldest_first: list[str]) -> None:
    """Space the runs' submission times a minute apart, in the given order."""
    with store.session() as s, s.begin():
        for i, run_id in enumerate(run_ids_oldest_first):
            first = store.get(run_ids_oldest_first[0])
            assert first is not None
            at = first.created_at + timedelta(minutes=i)
            s.execute(update(RunRow).where(RunRow.id == run_id).values(created_at=at))


def _set_state(store: Store, run_id: str, state: RunState, site: str | None = None) -> None:
    with store.session() as s, s.begin():
        s.execute(update(RunRow).where(RunRow.id == run_id).values(state=state.value, site=site))


@pytest.fixture
def five(store: Store) -> list[str]:
    """Five runs of tenant acme, a minute apart, named e, c, a, d, b (oldest first); a and
    b hold health data, the others personal data."""
    ids = [submit(store, "acme", n, "health" if n in "ab" else "personal") for n in "ecadb"]
    _aged(store, ids)
    _set_state(store, ids[0], RunState.RUNNING, "paris")
    _set_state(store, ids[1], RunState.SUCCEEDED, "frankfurt")
    _set_state(store, ids[3], RunState.RUNNING, "frankfurt")
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", [4, 3, 2, 1, 0], id="newest first by default"),
        pytest.param("sort=oldest", [0, 1, 2, 3, 4], id="oldest first"),
        pytest.param("sort=name", [2, 4, 1, 3, 0], id="by name"),
        pytest.param("state=running", [3, 0], id="one state"),
        pytest.param("state=running&state=succeeded", [3, 1, 0], id="two states"),
        pytest.param("site=frankfurt", [3, 1], id="one site"),
        pytest.param("site=frankfurt&state=running", [3], id="site and state"),
        pytest.param("state=failed", [], id="nothing matches"),
        pytest.param("provider=ionos", [3, 1], id="a provider: its sites"),
        pytest.param("provider=ionos&provider=scaleway", [3, 1, 0], id="two providers"),
        pytest.param("provider=ionos&site=paris", [], id="a site not of the provider"),
        pytest.param("provider=aws", [], id="a provider whose sites ran nothing"),
        pytest.param("provider=nobody", [], id="a provider of no site"),
        pytest.param("class=health", [4, 2], id="a data class"),
        pytest.param("class=health&state=running", [], id="a data class and a state"),
        pytest.param("class=personal&class=health", [4, 3, 2, 1, 0], id="two data classes"),
    ],
)
def test_the_runs_list_filters_and_sorts(
    sign_in: SignIn, five: list[str], query: str, expected: list[int]
) -> None:
    page = sign_in("acme", "viewer").get(f"{UI}/runs?{query}")
    assert page.status_code == 200
    assert run_ids(page.text) == [five[i] for i in expected]


def test_an_empty_list_says_how_to_fill_it_and_a_filtered_one_how_to_clear(
    sign_in: SignIn, five: list[str]
) -> None:
    browser = sign_in("nobody-yet", "viewer")
    assert "No runs yet" in browser.get(f"{UI}/runs").text
    filtered = sign_in("acme", "viewer").get(f"{UI}/runs?state=failed").text
    assert "No run matches these filters" in filtered and "Clear filters" in filtered


@pytest.mark.parametrize(
    "query", ["state=sleeping", "sort=price", "page=0", "per_page=5", "per_page=201"]
)
def test_a_bad_query_is_a_400_page_that_names_the_parameter(sign_in: SignIn, query: str) -> None:
    r = sign_in().get(f"{UI}/runs?{query}")
    assert r.status_code == 400
    assert query.split("=")[0] in r.text and "change the address" in r.text


@pytest.mark.parametrize(
    ("runs", "per_page", "page", "shown", "has_prev", "has_next"),
    [
        pytest.param(25, 10, 1, (25, 16), False, True, id="first page"),
        pytest.param(25, 10, 2, (15, 6), True, True, id="middle page"),
        pytest.param(25, 10, 3, (5, 1), True, False, id="last, partial page"),
        pytest.param(20, 10, 2, (10, 1), True, False, id="last, full page"),
        pytest.param(25, 10, 4, None, True, False, id="past the end"),
    ],
)
def test_the_runs_list_pages(
    sign_in: SignIn,
    store: Store,
    runs: int,
    per_page: int,
    page: int,
    shown: tuple[int, int] | None,
    has_prev: bool,
    has_next: bool,
) -> None:
    ids = [submit(store, "acme", f"run-{i + 1}") for i in range(runs)]
    _aged(store, ids)
    html = sign_in().get(f"{UI}/runs?per_page={per_page}&page={page}").text
    names = re.findall(r'href="/ui/runs/r-[0-9a-f]+">(run-\d+)</a>', html)
    if shown is None:
        assert names == [] and "past the last run" in html
    else:
        high, low = shown
        assert names == [f"run-{n}" for n in range(high, low - 1, -1)]
        assert f"of {runs}</caption>" in html
    assert ('rel="prev"' in html) is has_prev
    assert ('rel="next"' in html) is has_next
    if has_next:
        assert f"page={page + 1}" in html and f"per_page={per_page}" in html


def test_the_polled_table_answers_304_while_nothing_changed(sign_in: SignIn, store: Store) -> None:
    run_id = submit(store)
    browser = sign_in()
    first = browser.get(f"{UI}/runs/table")
    etag = first.headers["etag"]
    again = browser.get(f"{UI}/runs/table", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    _set_state(store, run_id, RunState.RUNNING, "paris")
    changed = browser.get(f"{UI}/runs/table", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "running" in changed.text


# --- a run's page -------------------------------------------------------------------------


def test_a_runs_page_shows_its_history_attempts_placement_and_logs(
    sign_in: SignIn, store: Store, reconciler: Reconciler
) -> None:
    run_id = submit(store)
    reconciler.step()
    reconciler.step()
    browser = sign_in()
    html = browser.get(f"{UI}/runs/{run_id}").text
    assert 'id="run-state">running<' in html
    # history: every transition, in order
    history = html.split('class="history"')[1]
    for state in ("pending", "placing", "launching", "running"):
        assert f"<td>{state}</td>" in history
    assert "placed on paris (attempt 1)" in html
    # placement: the cheapest site (1/h) allowed for personal data wins (virginia, at 0.5/h,
    # is in the US, which the default policy rules out for personal data)
    assert 'id="placement-choice">Chosen: <strong>paris</strong> at 1 USD/h' in html
    lost = html.split('class="lost"')[1]
    assert re.search(r"<td>virginia</td><td>[^<]+</td><td>site_in</td><td>[^<]*site in US", lost)
    logs = browser.get(f"{UI}/runs/{run_id}/logs?offset=0").text
    assert "python train.py" in logs and "offset=" in logs  # more to come: a poller


def test_the_logs_of_a_finished_run_stop_polling_once_read(
    sign_in: SignIn, store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run_id = submit(store)
    reconciler.step()
    reconciler.step()
    run = store.get(run_id)
    assert run is not None and run.attempt_id is not None
    fakes["paris"].finish(run.attempt_id, exit_code=0)
    reconciler.step()
    assert store.get(run_id).state is RunState.SUCCEEDED  # type: ignore[union-attr]
    browser = sign_in()
    first = browser.get(f"{UI}/runs/{run_id}/logs?offset=0").text
    offset = int(re.findall(r"offset=(\d+)", first)[-1])
    last = browser.get(f"{UI}/runs/{run_id}/logs?offset={offset}").text
    assert "hx-get" not in last


def test_cancelling_from_the_console_cancels_the_attempt_too(
    sign_in: SignIn, store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    run_id = submit(store)
    reconciler.step()
    reconciler.step()
    browser = sign_in()
    page = browser.get(f"{UI}/runs/{run_id}")
    r = browser.post(f"{UI}/runs/{run_id}/cancel", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == f"{UI}/runs/{run_id}"
    assert store.get(run_id).state is RunState.CANCELLED  # type: ignore[union-attr]
    after = browser.get(f"{UI}/runs/{run_id}").text
    assert "Cancel this run" not in after and "cancelled by the user" in after
    placement = after.split('id="placement-title"')[1].split("attempts-title")[0]
    assert "placed on paris (attempt 1)" in placement and "If it were placed now" not in placement


# --- the sites ------------------------------------------------------------------------------


def test_the_sites_view_shows_each_sites_facts_occupancy_and_health(
    sign_in: SignIn, store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    submit(store, "acme", "one")
    submit(store, "globex", "two")  # another tenant's run holds a slot too
    reconciler.step()
    reconciler.step()
    fakes["virginia"].set_health(False, "maintenance")
    html = sign_in("acme", "admin").get(f"{UI}/sites").text
    rows: dict[str, Any] = {
        name: re.findall(r"<td>([^<]*)</td>", row)
        for name, row in re.findall(r'<tr data-site="([^"]+)">(.*?)</tr>', html, re.S)
    }
    assert rows["paris"][:5] == ["paris", "local", "scaleway", "fr-par", "FR"]
    assert rows["paris"][6:8] == ["cpu:1", "2 of 2"]
    assert rows["frankfurt"][7] == "0 of 2"
    # the provider registry's facts: Scaleway is French, outside the CLOUD Act's reach; AWS
    # is American
    assert rows["paris"][5].startswith("HQ FR, CLOUD Act: no")
    assert rows["virginia"][5].startswith("HQ US, CLOUD Act: yes")
    assert "down" in html and "maintenance" in html


@pytest.mark.parametrize(
    ("facts", "line"),
    [
        pytest.param(
            ProviderFacts("x", "X", registered=False), "not in the provider registry", id="unknown"
        ),
        pytest.param(ProviderFacts("x", "X"), "HQ ?, CLOUD Act: ?, ISO 27001 ?", id="no facts"),
        pytest.param(
            ProviderFacts(
                "x",
                "X",
                hq_country="FR",
                cloud_act=CloudActExposure.NO,
                secnumcloud="qualified",
                certifications={"iso27001": True},
            ),
            "HQ FR, CLOUD Act: no, SecNumCloud qualified, ISO 27001",
            id="qualified",
        ),
        pytest.param(
            ProviderFacts(
                "x",
                "X",
                hq_country="US",
                cloud_act=CloudActExposure.VIA_PARENT,
                secnumcloud="none",
                certifications={"iso27001": False},
                marketplace=True,
            ),
            "HQ US, CLOUD Act: via-parent, no ISO 27001, marketplace",
            id="marketplace",
        ),
    ],
)
def test_a_sites_jurisdiction_reads_as_one_line(facts: ProviderFacts, line: str) -> None:
    assert jurisdiction(facts) == line
