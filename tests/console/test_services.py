"""The services view: each model's running replicas by site, provider and country, for the
tenants that may route to them, and never a service's credential; with the gateway's
traffic, errors, health and circuit per replica when the server knows its metrics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from archipel.console import PREFIX, GatewayMetrics
from archipel.controlplane import Reconciler, Store
from archipel.core import parse_workload
from archipel.gateway._metrics import RequestStats

from .conftest import Clock, SignIn

SERVICE: dict[str, Any] = {
    "name": "llama",
    "kind": "inference",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "replicas": 2,
    "spread": {"min_providers": 2},
    "run": {"command": ["python", "-m", "server"]},
    "serve": {"model": "llama-3.1-8b"},
}


def rows(html: str) -> list[list[str]]:
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr data-replica=[^>]*>(.*?)</tr>", html, re.S)
    ]


def test_a_services_replicas_are_listed_by_site_provider_and_country(
    sign_in: SignIn, store: Store, reconciler: Reconciler
) -> None:
    runs = store.submit_group("acme", parse_workload(SERVICE, "test"))
    reconciler.step()
    reconciler.step()
    html = sign_in("acme", "viewer").get(f"{PREFIX}/services").text
    assert "<caption>llama-3.1-8b: 2 replicas in 2 countries</caption>" in html
    ports = {r.id: store.attempts(r.id)[0].port for r in runs}
    # spread over two providers: the two EU sites (the US one may not hold personal data)
    assert sorted(rows(html)) == sorted(
        [
            [
                "llama-1",
                "acme",
                "paris",
                "scaleway",
                "fr-par",
                "FR",
                f"127.0.0.1:{ports[runs[0].id]}/v1",
            ],
            [
                "llama-2",
                "acme",
                "frankfurt",
                "ionos",
                "de/fra",
                "DE",
                f"127.0.0.1:{ports[runs[1].id]}/v1",
            ],
        ]
    )
    for run in runs:
        assert run.service_key is not None and run.service_key not in html
    # which data classes may use each replica: the policy's verdict on its site (both EU
    # sites take every class of the default policy but sovereign, SecNumCloud only)
    assert (
        re.findall(r'data-classes="([^"]*)"', html)
        == ["public internal confidential personal health"] * 2
    )


def test_another_tenants_services_stay_out_unless_published_to_it(
    sign_in: SignIn, store: Store, reconciler: Reconciler
) -> None:
    store.submit("globex", parse_workload({**SERVICE, "replicas": 1, "spread": {}}, "test"))
    shared = {**SERVICE, "name": "shared", "replicas": 1, "spread": {}}
    shared["serve"] = {"model": "mistral", "publish_to": ["acme"]}
    store.submit("initech", parse_workload(shared, "test"))
    reconciler.step()
    reconciler.step()
    html = sign_in("acme", "admin").get(f"{PREFIX}/services").text
    assert "llama-3.1-8b" not in html
    assert [r[:2] for r in rows(html)] == [["shared", "initech"]]
    assert "/ui/runs/" not in html.split('class="service"')[1]  # not acme's run: no link


def test_with_no_service_the_view_says_how_to_start_one(sign_in: SignIn) -> None:
    html = sign_in().get(f"{PREFIX}/services").text
    assert "No service is running" in html and "service.yaml" in html


@pytest.mark.parametrize("gateway", [None])
def test_without_a_gateway_the_view_says_none_is_configured(
    sign_in: SignIn, store: Store, reconciler: Reconciler, gateway: None
) -> None:
    store.submit_group("acme", parse_workload(SERVICE, "test"))
    reconciler.step()
    reconciler.step()
    html = sign_in("acme", "viewer").get(f"{PREFIX}/services").text
    assert 'id="gateway-status"' in html and "No gateway is configured" in html
    assert "--gateway-metrics URL" in html
    assert html.count('data-requests=""') == 2


class Gauges:
    """The gateway's per-replica gauges, as its StateCollector names and labels them."""

    def __init__(self, rows: list[tuple[str, int, int]]) -> None:
        self.rows = rows  # (replica, up, circuit)

    def collect(self) -> Any:
        labels = ["replica", "provider", "region"]
        up = GaugeMetricFamily("archipel_gateway_replica_up", "up", labels=labels)
        circuit = GaugeMetricFamily("archipel_gateway_circuit_state", "circuit", labels=labels)
        for replica, is_up, state in self.rows:
            up.add_metric([replica, "p", "r"], is_up)
            circuit.add_metric([replica, "p", "r"], state)
        yield up
        yield circuit


class FakeGateway:
    """A gateway's /metrics, written by the gateway's own request counters."""

    def __init__(self) -> None:
        self.stats = RequestStats()
        self.gauges = Gauges([])
        self.reads = 0
        self.down: str | None = None

    def fetch(self) -> str:
        self.reads += 1
        if self.down:
            raise ConnectionError(self.down)
        registry = CollectorRegistry()
        registry.register(self.stats)
        registry.register(self.gauges)
        return generate_latest(registry).decode()


@pytest.fixture
def fake_gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def gateway(fake_gateway: FakeGateway) -> GatewayMetrics:
    return GatewayMetrics("http://127.0.0.1:8080/metrics", fake_gateway.fetch)


def figures(html: str) -> dict[str, tuple[str, str]]:
    """Per replica row (its run id): the requests and errors shown."""
    return {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(
            r'<tr data-replica="([^"]+)">.*?data-requests="([^"]*)".*?data-errors="([^"]*)"',
            html,
            re.S,
        )
    }


def test_each_own_replicas_traffic_errors_health_and_circuit_come_from_the_gateway(
    sign_in: SignIn,
    store: Store,
    reconciler: Reconciler,
    fake_gateway: FakeGateway,
    clock: Clock,
) -> None:
    runs = store.submit_group("acme", parse_workload(SERVICE, "test"))
    shared = {**SERVICE, "name": "shared", "replicas": 1, "spread": {}}
    shared["serve"] = {"model": "mistral", "publish_to": ["acme"]}
    theirs = store.submit("initech", parse_workload(shared, "test"))
    reconciler.step()
    reconciler.step()
    first, second = (f"llama-3.1-8b/{r.id}" for r in runs)
    for _ in range(7):
        fake_gateway.stats.attempt(first, "scaleway", "ok")
    for _ in range(3):
        fake_gateway.stats.attempt(first, "scaleway", "failed")
    fake_gateway.stats.attempt(f"mistral/{theirs.id}", "x", "ok")  # initech's traffic
    fake_gateway.gauges.rows = [(first, 1, 0), (second, 0, 2), (f"mistral/{theirs.id}", 1, 0)]
    browser = sign_in("acme", "viewer")
    html = browser.get(f"{PREFIX}/services").text
    assert "Traffic from the gateway at <code>http://127.0.0.1:8080/metrics</code>" in html
    assert figures(html) == {runs[0].id: ("10", "3"), runs[1].id: ("0", "0"), theirs.id: ("", "")}
    assert "3 (30.0%)" in html
    row = html.split(f'data-replica="{runs[1].id}"')[1].split("</tr>")[0]
    assert "down" in row and "open" in row
    # read once for both, then again once the reading is older than the cache
    browser.get(f"{PREFIX}/services/table")
    assert fake_gateway.reads == 1
    clock.now += 5
    browser.get(f"{PREFIX}/services/table")
    assert fake_gateway.reads == 2


def test_a_gateway_that_cannot_be_read_is_said_and_the_replicas_still_listed(
    sign_in: SignIn, store: Store, reconciler: Reconciler, fake_gateway: FakeGateway
) -> None:
    store.submit_group("acme", parse_workload(SERVICE, "test"))
    reconciler.step()
    reconciler.step()
    fake_gateway.down = "connection refused"
    answer = sign_in("acme", "viewer").get(f"{PREFIX}/services")
    assert answer.status_code == 200
    assert "could not be read" in answer.text and "connection refused" in answer.text
    assert len(rows(answer.text)) == 2


def test_a_gateway_answer_that_is_not_prometheus_text_is_said() -> None:
    from archipel.console._traffic import TrafficReader

    reader = TrafficReader(GatewayMetrics("http://gw/metrics", lambda: "<html>{"), lambda: 0.0)
    traffic = reader.read()
    assert traffic.error is not None and traffic.error.startswith("not Prometheus metrics")
