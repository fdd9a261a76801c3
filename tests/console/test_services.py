"""The services view: each model's running replicas by site, provider and country, for the
tenants that may route to them, and never a service's credential."""

from __future__ import annotations

import re
from typing import Any

from archipel.console import PREFIX
from archipel.controlplane import Reconciler, Store
from archipel.core import parse_workload

from .conftest import SignIn

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
