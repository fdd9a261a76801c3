"""The HTTP API: tokens, tenants, roles, clear 4xx errors, the run's whole story."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from archipel.backends import FakeBackend
from archipel.controlplane import Reconciler, Store
from archipel.controlplane._api import create_app

SPEC: dict[str, Any] = {
    "name": "train",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "train.py"]},
}


@pytest.fixture
def api(store: Store, reconciler: Reconciler) -> TestClient:
    return TestClient(create_app(store, reconciler))


def auth(store: Store, tenant: str = "acme", role: str = "submitter") -> dict[str, str]:
    return {"Authorization": f"Bearer {store.create_token(tenant, role)}"}


def test_submit_then_watch_the_run_progress(
    api: TestClient, store: Store, reconciler: Reconciler, fakes: dict[str, FakeBackend]
) -> None:
    h = auth(store)
    created = api.post("/v1/runs", json=SPEC, headers=h)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    reconciler.step()
    reconciler.step()
    body = api.get(f"/v1/runs/{run_id}", headers=h).json()
    assert body["state"] == "running" and body["site"] == "paris"
    assert [e["to_state"] for e in body["events"]] == ["pending", "placing", "launching", "running"]
    logs = api.get(f"/v1/runs/{run_id}/logs", headers=h).json()
    assert "python train.py" in logs["data"]
    assert api.get("/v1/runs", headers=h).json()[0]["id"] == run_id
    cancelled = api.post(f"/v1/runs/{run_id}/cancel", headers=h).json()
    assert cancelled["state"] == "cancelled"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer arch_nope_nope"}, 401),
        ({"Authorization": "Basic abc"}, 401),
    ],
    ids=["no token", "unknown token", "wrong scheme"],
)
def test_requests_without_a_valid_token_are_refused(
    api: TestClient, headers: dict[str, str], status: int
) -> None:
    r = api.get("/v1/runs", headers=headers)
    assert r.status_code == status
    assert "token" in r.json()["detail"]


def test_a_viewer_can_read_but_not_submit(api: TestClient, store: Store) -> None:
    r = api.post("/v1/runs", json=SPEC, headers=auth(store, role="viewer"))
    assert r.status_code == 403
    assert "submitter" in r.json()["detail"]


def test_a_tenant_never_sees_another_tenants_runs(api: TestClient, store: Store) -> None:
    mine = api.post("/v1/runs", json=SPEC, headers=auth(store, "acme")).json()["id"]
    other = auth(store, "globex")
    assert api.get(f"/v1/runs/{mine}", headers=other).status_code == 404
    assert api.post(f"/v1/runs/{mine}/cancel", headers=other).status_code == 404
    assert api.get("/v1/runs", headers=other).json() == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**SPEC, "kind": "trainig"}, "kind"),
        ({**SPEC, "resources": {"accelerators": "cpu:zero"}}, "resources.accelerators"),
        ({k: v for k, v in SPEC.items() if k != "run"}, "run.command"),
        ({**SPEC, "colour": "red"}, "colour"),
    ],
    ids=["kind typo", "bad accelerator", "no command", "unknown field"],
)
def test_bad_specs_get_a_422_naming_the_field(
    api: TestClient, store: Store, spec: dict[str, Any], field: str
) -> None:
    r = api.post("/v1/runs", json=spec, headers=auth(store))
    assert r.status_code == 422
    assert any(p.startswith(f"{field}:") for p in r.json()["detail"]), r.json()


def test_unknown_runs_are_404(api: TestClient, store: Store) -> None:
    h = auth(store)
    assert api.get("/v1/runs/r-missing", headers=h).status_code == 404
    assert api.get("/v1/runs/r-missing/logs", headers=h).status_code == 404


def test_sites_show_their_mapping_and_health(
    api: TestClient, store: Store, fakes: dict[str, FakeBackend]
) -> None:
    fakes["frankfurt"].set_health(False, "maintenance")
    sites = {s["name"]: s for s in api.get("/v1/sites", headers=auth(store)).json()}
    assert sites["paris"]["country"] == "FR" and sites["paris"]["healthy"]
    assert not sites["frankfurt"]["healthy"] and sites["frankfurt"]["reason"] == "maintenance"


def test_the_openapi_spec_is_served(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/cancel"} <= set(spec["paths"])


def test_work_no_site_may_ever_hold_is_refused_at_submission(api: TestClient, store: Store) -> None:
    r = api.post("/v1/runs", json={**SPEC, "data": {"class": "sovereign"}}, headers=auth(store))
    assert r.status_code == 422
    detail = " ".join(r.json()["detail"])
    assert "sovereign" in detail and "SecNumCloud" in detail


def test_unknown_hardware_is_refused_at_submission(api: TestClient, store: Store) -> None:
    spec = {**SPEC, "resources": {"accelerators": "H100:8"}}
    r = api.post("/v1/runs", json=spec, headers=auth(store))
    assert r.status_code == 422
    assert "H100" in " ".join(r.json()["detail"])
