"""The HTTP API: tokens, tenants, roles, clear 4xx errors, the run's whole story, and the
routes it publishes for the gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archipel.backends import FakeBackend
from archipel.controlplane import Reconciler, Store
from archipel.controlplane._api import create_app

from .conftest import SITES, HostedFake, MakeReconciler

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
        ({k: v for k, v in SPEC.items() if k != "run"}, "run"),
        ({**SPEC, "colour": "red"}, "colour"),
        ({**SPEC, "replicas": 2}, "replicas"),
        ({**SPEC, "kind": "inference", "name": "x" * 199, "replicas": 2}, "name"),
    ],
    ids=[
        "kind typo",
        "bad accelerator",
        "no command",
        "unknown field",
        "several replicas of a training job",
        "no room to name the replicas",
    ],
)
def test_bad_specs_get_a_422_naming_the_field(
    api: TestClient, store: Store, spec: dict[str, Any], field: str
) -> None:
    r = api.post("/v1/runs", json=spec, headers=auth(store))
    assert r.status_code == 422
    assert any(p.startswith(f"{field}:") for p in r.json()["detail"]), r.json()


def test_replicas_of_a_training_job_are_refused_as_a_services_only_field(
    api: TestClient, store: Store
) -> None:
    r = api.post("/v1/runs", json={**SPEC, "replicas": 3}, headers=auth(store))
    assert "replicas applies to inference services" in r.json()["detail"][0]


def test_unknown_runs_are_404(api: TestClient, store: Store) -> None:
    h = auth(store)
    assert api.get("/v1/runs/r-missing", headers=h).status_code == 404
    assert api.get("/v1/runs/r-missing/logs", headers=h).status_code == 404


def test_sites_show_their_mapping_and_health(
    api: TestClient, store: Store, fakes: dict[str, FakeBackend]
) -> None:
    fakes["frankfurt"].set_health(False, "maintenance")
    sites = {s["name"]: s for s in api.get("/v1/sites", headers=auth(store, role="admin")).json()}
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


SERVICE: dict[str, Any] = {
    "name": "llama",
    "kind": "inference",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "-m", "server"]},
    "serve": {
        "model": "llama-3.1-8b",
        "price": {"currency": "EUR", "input_per_million": "0.20", "output_per_million": "6E-1"},
    },
}


def serving(
    api: TestClient,
    store: Store,
    reconciler: Reconciler,
    tenant: str = "acme",
    role: str = "submitter",
    **serve: Any,
) -> str:
    """Submit a service as ``tenant`` and drive it to running; its run id."""
    spec = {**SERVICE, "serve": {**SERVICE["serve"], **serve}}
    created = api.post("/v1/runs", json=spec, headers=auth(store, tenant, role))
    assert created.status_code == 201, created.text
    reconciler.step()
    reconciler.step()
    return str(created.json()["id"])


def test_a_running_service_is_routed_at_its_site_and_port(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    run_id = serving(api, store, reconciler)
    port = store.attempts(run_id)[0].port
    assert port is not None
    r = api.get("/v1/routes", headers=auth(store, role="viewer"))
    assert r.status_code == 200, r.text
    key = r.json()["models"]["llama-3.1-8b"]["replicas"][0]["key"]
    assert isinstance(key, str) and len(key) >= 32  # see the service key tests
    assert r.json() == {
        "tenant": "acme",
        "models": {
            "llama-3.1-8b": {
                "owned_by": "acme",
                "replicas": [
                    {
                        "name": run_id,
                        "tenant": "acme",
                        "key": key,
                        "provider": "scaleway",
                        "region": "fr-par",
                        "country": "FR",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                        "max_concurrency": 64,
                        "weight": 1.0,
                        "pool": "primary",
                        "health_path": "/models",
                        "price": {
                            "currency": "EUR",
                            "input_per_million": "0.20",
                            "output_per_million": "0.6",
                        },
                    }
                ],
            }
        },
    }


def test_only_running_services_are_routed(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    h = auth(store)
    api.post("/v1/runs", json=SPEC, headers=h)  # runs, but serves nothing
    cancelled = serving(api, store, reconciler)
    api.post(f"/v1/runs/{cancelled}/cancel", headers=h)
    api.post("/v1/runs", json=SERVICE, headers=h)  # submitted, not started yet
    assert api.get("/v1/routes", headers=h).json() == {"tenant": "acme", "models": {}}


def test_models_and_replicas_are_sorted_by_name(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    ids = sorted(serving(api, store, reconciler, owned_by=f"team{i}") for i in range(2))
    serving(api, store, reconciler, model="gemma-2-9b", path="/openai/v1", weight=2)
    models = api.get("/v1/routes", headers=auth(store)).json()["models"]
    assert list(models) == ["gemma-2-9b", "llama-3.1-8b"]
    assert [r["name"] for r in models["llama-3.1-8b"]["replicas"]] == ids
    gemma = models["gemma-2-9b"]["replicas"][0]
    assert gemma["base_url"].endswith("/openai/v1") and gemma["weight"] == 2
    assert models["gemma-2-9b"]["owned_by"] == "acme"  # no owned_by: the tenant


@pytest.mark.parametrize(
    ("tenant", "role", "models"),
    [
        pytest.param("acme", "viewer", {"llama-3.1-8b"}, id="acme viewer: acme's"),
        pytest.param("acme", "admin", {"llama-3.1-8b"}, id="acme admin: acme's"),
        pytest.param("globex", "submitter", {"mistral-7b"}, id="globex submitter: globex's"),
        pytest.param("globex", "admin", {"mistral-7b"}, id="globex admin: globex's, not acme's"),
        pytest.param("initech", "admin", set(), id="an admin of a tenant with none: nothing"),
    ],
)
def test_every_role_sees_the_services_of_its_own_tenant_only(
    api: TestClient, store: Store, reconciler: Reconciler, tenant: str, role: str, models: set[str]
) -> None:
    serving(api, store, reconciler, "acme")
    serving(api, store, reconciler, "globex", model="mistral-7b")
    seen = api.get("/v1/routes", headers=auth(store, tenant, role)).json()
    assert seen["tenant"] == tenant
    assert set(seen["models"]) == models
    owners = {r["tenant"] for m in seen["models"].values() for r in m["replicas"]}
    assert owners <= {tenant}
    assert api.get("/v1/routes").status_code == 401


def test_an_admin_publishes_a_service_to_another_tenant_and_only_to_it(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    published = serving(api, store, reconciler, "acme", "admin", publish_to=["globex"])
    serving(api, store, reconciler, "acme", model="mistral-7b")  # acme's alone
    seen = {
        t: api.get("/v1/routes", headers=auth(store, t, "viewer")).json()["models"]
        for t in ("acme", "globex", "initech")
    }
    assert set(seen["acme"]) == {"llama-3.1-8b", "mistral-7b"}
    assert seen["initech"] == {}
    [replica] = seen["globex"]["llama-3.1-8b"]["replicas"]
    assert (replica["name"], replica["tenant"]) == (published, "acme")


@pytest.mark.parametrize(
    ("role", "publish_to", "status"),
    [
        pytest.param("submitter", ["globex"], 403, id="a submitter may not publish out"),
        pytest.param("submitter", ["acme"], 201, id="a submitter may name its own tenant"),
        pytest.param("admin", ["globex", "initech"], 201, id="an admin may"),
    ],
)
def test_publishing_to_another_tenant_is_an_admins_decision(
    api: TestClient, store: Store, role: str, publish_to: list[str], status: int
) -> None:
    spec = {**SERVICE, "serve": {**SERVICE["serve"], "publish_to": publish_to}}
    r = api.post("/v1/runs", json=spec, headers=auth(store, "acme", role))
    assert r.status_code == status, r.text
    if status == 403:
        assert "serve.publish_to" in r.json()["detail"] and "admin" in r.json()["detail"]


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        pytest.param("{etag}", 304, id="the same tag"),
        pytest.param("W/{etag}", 304, id="the same tag, weak"),
        pytest.param('"stale", {etag}', 304, id="one of several tags"),
        pytest.param("*", 304, id="any tag"),
        pytest.param('"stale"', 200, id="another tag"),
        pytest.param("", 200, id="empty"),
    ],
)
def test_a_poller_gets_304_while_the_routes_are_unchanged(
    api: TestClient, store: Store, reconciler: Reconciler, if_none_match: str, status: int
) -> None:
    serving(api, store, reconciler)
    h = auth(store)
    first = api.get("/v1/routes", headers=h)
    etag = first.headers["etag"]
    again = api.get("/v1/routes", headers={**h, "If-None-Match": if_none_match.format(etag=etag)})
    assert again.status_code == status
    assert again.headers["etag"] == etag
    assert again.content == (b"" if status == 304 else first.content)


def test_the_etag_changes_when_the_routes_do(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    h = auth(store)
    before = api.get("/v1/routes", headers=h).headers["etag"]
    serving(api, store, reconciler)
    changed = api.get("/v1/routes", headers={**h, "If-None-Match": before})
    assert changed.status_code == 200 and changed.headers["etag"] != before


@pytest.mark.parametrize(
    ("backend", "address", "observed", "host"),
    [
        pytest.param("local", None, None, "127.0.0.1", id="local: this machine"),
        pytest.param("local", "paris.lan", None, "paris.lan", id="local with an address"),
        pytest.param("slurm", None, "node7", "node7", id="slurm: the observed node"),
        pytest.param("slurm", "hpc.lan", "node7", "hpc.lan", id="the address wins"),
        pytest.param("slurm", None, None, None, id="slurm, node not known yet: not routed"),
        pytest.param("slurm", None, "fd00::7", "[fd00::7]", id="an IPv6 address"),
    ],
)
def test_a_service_is_reached_at_the_site_address_else_the_observed_host(
    store: Store,
    make_reconciler: MakeReconciler,
    backend: str,
    address: str | None,
    observed: str | None,
    host: str | None,
) -> None:
    specs = [
        s.model_copy(update={"backend": backend, "address": address}) if s.name == "paris" else s
        for s in SITES
    ]
    backends = {s.name: HostedFake(s.name, lambda: observed) for s in specs}
    reconciler = make_reconciler(specs, backends, pick_port=lambda: 41000)
    api = TestClient(create_app(store, reconciler))
    serving(api, store, reconciler)
    models = api.get("/v1/routes", headers=auth(store)).json()["models"]
    if host is None:
        assert models == {}
    else:
        assert models["llama-3.1-8b"]["replicas"][0]["base_url"] == f"http://{host}:41000/v1"


# -- groups: a service with several replicas -----------------------------------------


def replicated(replicas: int = 2, **spread: Any) -> dict[str, Any]:
    return {**SERVICE, "replicas": replicas, **({"spread": spread} if spread else {})}


def test_a_service_with_replicas_is_submitted_as_a_group_listed_by_its_id(
    api: TestClient, store: Store
) -> None:
    h = auth(store)
    api.post("/v1/runs", json=SPEC, headers=h)  # not in the group
    created = api.post("/v1/runs", json=replicated(3, min_providers=2), headers=h)
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["name"] == "llama-1" and first["group"] is not None
    listed = api.get("/v1/runs", params={"group": first["group"]}, headers=h).json()
    assert [r["name"] for r in listed] == ["llama-1", "llama-2", "llama-3"]
    assert {r["group"] for r in listed} == {first["group"]} and listed[0]["id"] == first["id"]
    assert (
        api.get("/v1/runs", params={"group": first["group"]}, headers=auth(store, "globex")).json()
        == []
    )
    single = api.get("/v1/runs", headers=h).json()[0]
    assert single["name"] == "train" and single["group"] is None


@pytest.mark.parametrize(
    ("replicas", "spread", "rule"),
    [
        pytest.param(3, {"min_providers": 3}, "spread.min_providers", id="too few providers"),
        pytest.param(3, {"min_countries": 3}, "spread.min_countries", id="too few countries"),
        pytest.param(
            6, {"max_share_per_provider": 0.4}, "spread.max_share_per_provider", id="share cap"
        ),
    ],
)
def test_a_spread_the_allowed_sites_can_never_satisfy_is_a_422_naming_the_rule(
    api: TestClient, store: Store, replicas: int, spread: dict[str, Any], rule: str
) -> None:
    """Personal data: only the two EU sites (scaleway in FR, ionos in DE) are allowed."""
    r = api.post("/v1/runs", json=replicated(replicas, **spread), headers=auth(store))
    assert r.status_code == 422
    assert any(p.startswith(f"{rule}:") for p in r.json()["detail"]), r.json()
    assert store.runs() == []


def test_the_replicas_of_a_serving_group_are_routed_as_replicas_of_the_model(
    api: TestClient, store: Store, reconciler: Reconciler
) -> None:
    h = auth(store)
    group = api.post("/v1/runs", json=replicated(2, min_providers=2), headers=h).json()["group"]
    reconciler.step()
    reconciler.step()
    ids = [r["id"] for r in api.get("/v1/runs", params={"group": group}, headers=h).json()]
    replicas = api.get("/v1/routes", headers=h).json()["models"]["llama-3.1-8b"]["replicas"]
    assert sorted(r["name"] for r in replicas) == sorted(ids)
    assert {(r["provider"], r["country"]) for r in replicas} == {
        ("scaleway", "FR"),
        ("ionos", "DE"),
    }


# -- service keys: each service its own credential ------------------------------------


class Recording(FakeBackend):
    """A fake that keeps the environment of every launch."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.envs: dict[str, dict[str, str]] = {}

    def launch(self, request: Any) -> Any:
        self.envs[request.attempt_id] = dict(request.env)
        return super().launch(request)


def test_each_service_gets_a_key_of_its_own_given_to_its_attempts_and_routes(
    store: Store, make_reconciler: MakeReconciler
) -> None:
    backends = {s.name: Recording(s.name) for s in SITES}
    reconciler = make_reconciler(SITES, backends)
    api = TestClient(create_app(store, reconciler))
    h = auth(store)
    group = api.post("/v1/runs", json=replicated(2, min_providers=2), headers=h).json()["group"]
    alone = serving(api, store, reconciler, model="mistral-7b")
    train = api.post("/v1/runs", json=SPEC, headers=h).json()["id"]
    reconciler.step()
    reconciler.step()
    given = {
        a: env.get("ARCHIPEL_SERVICE_KEY") for b in backends.values() for a, env in b.envs.items()
    }
    routed = {
        r["name"]: r["key"]
        for m in api.get("/v1/routes", headers=h).json()["models"].values()
        for r in m["replicas"]
    }
    members = [r["id"] for r in api.get("/v1/runs", params={"group": group}, headers=h).json()]
    attempt_of = {run: store.attempts(run)[0].id for run in [*members, alone, train]}
    for run, key in routed.items():
        assert key is not None and given[attempt_of[run]] == key  # what it checks, we send
    assert routed[members[0]] == routed[members[1]]  # one service, one key
    assert routed[alone] != routed[members[0]]  # another service, another key
    assert given[attempt_of[train]] is None  # a run that serves nothing gets none


def with_run(**run: Any) -> dict[str, Any]:
    return {**SPEC, "run": {**SPEC["run"], **run}}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(with_run(env={"A=B": "1"}), "run.env", id="env name with ="),
        pytest.param(with_run(env={"A": "x\x00"}), "run.env.A", id="NUL in an env value"),
        pytest.param(with_run(command=["python", "a\x00b"]), "run.command[1]", id="NUL in an arg"),
    ],
)
def test_a_run_no_process_could_start_is_refused_at_submission(
    api: TestClient, store: Store, spec: dict[str, Any], field: str
) -> None:
    r = api.post("/v1/runs", json=spec, headers=auth(store))
    assert r.status_code == 422
    assert any(p.startswith(f"{field}:") for p in r.json()["detail"]), r.json()
    assert store.runs(tenant="acme") == []


@pytest.mark.parametrize(
    "count",
    ['"inf"', "1e400", "1" * 400, "null", "{}", "[1]", '"nan"', "-1", "0"],
    ids=["text inf", "1e400", "400 digits", "null", "object", "list", "text nan", "-1", "0"],
)
def test_an_accelerator_count_that_is_no_count_is_a_422_naming_it(
    api: TestClient, store: Store, count: str
) -> None:
    body = (
        '{"name": "t", "kind": "training", "run": {"command": ["python"]}, '
        f'"resources": {{"accelerators": [{{"model": "cpu", "count": {count}}}]}}}}'
    )
    headers = {**auth(store), "Content-Type": "application/json"}
    r = api.post("/v1/runs", content=body, headers=headers)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem.startswith("resources.accelerators[0].count: ") and "at most 1024" in problem


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param('{"data": {"class": "\\ud800"}}', "data.class", id="in a value"),
        pytest.param('{"\\ud800": 1}', "(document)", id="in a field name"),
    ],
)
def test_text_that_is_not_unicode_is_a_422_not_a_500(
    api: TestClient, store: Store, body: str, field: str
) -> None:
    spec = json.dumps({k: v for k, v in SPEC.items() if k != "data"})
    headers = {**auth(store), "Content-Type": "application/json"}
    r = api.post("/v1/runs", content=spec[:-1] + ", " + body[1:], headers=headers)
    assert r.status_code == 422, r.text
    assert any(p.startswith(f"{field}:") for p in json.loads(r.text)["detail"]), r.text


@pytest.mark.parametrize(
    ("role", "status"),
    [("viewer", 403), ("submitter", 403), ("admin", 200)],
    ids=["viewer", "submitter", "admin"],
)
def test_only_an_admin_lists_the_sites(
    api: TestClient, store: Store, role: str, status: int
) -> None:
    assert api.get("/v1/sites", headers=auth(store, role=role)).status_code == status


def test_times_are_answered_with_their_zone(api: TestClient, store: Store) -> None:
    run = api.post("/v1/runs", json=SPEC, headers=auth(store)).json()
    assert run["created_at"].endswith("Z") or run["created_at"].endswith("+00:00")
