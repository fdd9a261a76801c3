"""Per-tenant quotas at submission: 422 for a submission that could never fit, 429 for
one that does not fit now because of what the tenant already has.

Runs against SQLite and PostgreSQL alike (the ``store`` fixture)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archipel.cli._server import server
from archipel.controlplane import Reconciler, Store
from archipel.controlplane._api import create_app
from archipel.controlplane._quotas import ACTIVE_RUNS, GPUS, REPLICAS, Quotas, gpus_per_run
from archipel.core import RunState, parse_workload

QUOTAS = Quotas(active_runs=3, replicas=4, gpus=16)

TRAIN: dict[str, Any] = {
    "name": "train",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "train.py"]},
}
SERVICE: dict[str, Any] = {
    **TRAIN,
    "name": "llama",
    "kind": "inference",
    "serve": {"model": "llama-3.1-8b"},
}


def gpus(spec: str | list[str], nodes: int = 1) -> dict[str, Any]:
    return {**TRAIN, "resources": {"accelerators": spec, "nodes": nodes}}


def holding(
    tenant: str, spec: dict[str, Any], count: int, finished: bool = False
) -> Callable[[Store], None]:
    """Set-up: ``tenant`` already has ``count`` runs of ``spec`` (cancelled if ``finished``)."""

    def setup(store: Store) -> None:
        for _ in range(count):
            run = store.submit(tenant, parse_workload(spec))
            if finished:
                store.transition(run, RunState.CANCELLED, "set-up")

    return setup


def nothing(store: Store) -> None:
    return None


@pytest.mark.parametrize(
    ("before", "spec", "status", "says"),
    [
        pytest.param(
            nothing,
            {**SERVICE, "replicas": 5},
            422,
            "replicas: 5 asked, and this server takes at most 4 per submission",
            id="more replicas than one submission may have: 422",
        ),
        pytest.param(
            nothing,
            gpus("H100:8", nodes=3),
            422,
            "resources: 24 GPUs asked, and a tenant may hold at most 16",
            id="more GPUs than a tenant may ever hold: 422",
        ),
        pytest.param(
            holding("acme", TRAIN, 3),
            TRAIN,
            429,
            "tenant acme has 3 unfinished runs, and may have at most 3",
            id="the tenant's unfinished runs at the limit: 429",
        ),
        pytest.param(
            holding("acme", TRAIN, 2),
            {**SERVICE, "replicas": 2},
            429,
            "this submission of 2 fits once some of them finish",
            id="two replicas with room for one: 429",
        ),
        pytest.param(
            holding("acme", gpus("H100:8"), 2),
            gpus("A100:1"),
            429,
            "asking for 16 GPUs, and may hold at most 16",
            id="the tenant's GPUs at the limit: 429",
        ),
        pytest.param(
            holding("globex", TRAIN, 3),
            TRAIN,
            201,
            "",
            id="another tenant's runs do not count",
        ),
        pytest.param(
            holding("acme", TRAIN, 3, finished=True),
            TRAIN,
            201,
            "",
            id="finished runs do not count",
        ),
        pytest.param(
            holding("acme", gpus("H100:8"), 2),
            TRAIN,
            201,
            "",
            id="a CPU run when the GPUs are all held",
        ),
    ],
)
def test_submissions_are_held_to_the_tenants_quotas(
    store: Store,
    reconciler: Reconciler,
    before: Callable[[Store], None],
    spec: dict[str, Any],
    status: int,
    says: str,
) -> None:
    api = TestClient(create_app(store, reconciler, quotas=QUOTAS))
    before(store)
    token = store.create_token("acme", "submitter")
    stored = store.count()
    r = api.post("/v1/runs", json=spec, headers={"Authorization": f"Bearer {token}"})
    if status == 201:
        assert r.status_code == 201, r.text
        return
    assert r.status_code == status, r.text
    assert says in r.json()["detail"][0]
    assert "Retry-After" not in r.headers
    assert store.count() == stored  # nothing was stored


@pytest.mark.parametrize(
    ("accelerators", "nodes", "asked"),
    [
        pytest.param("cpu:4", 1, 0, id="cpu counts no GPU"),
        pytest.param("H100:8", 2, 16, id="per node, times the nodes"),
        pytest.param(["A100:4", "H100:8"], 1, 8, id="the largest alternative"),
        pytest.param("L4:0.5", 1, 1, id="a fraction rounds up"),
    ],
)
def test_the_gpus_a_run_asks_for(accelerators: Any, nodes: int, asked: int) -> None:
    assert gpus_per_run(parse_workload(gpus(accelerators, nodes))) == asked


def test_a_quota_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="quota replicas must be at least 1"):
        Quotas(replicas=0)


def test_the_server_flags_default_to_the_quotas_defaults() -> None:
    defaults = {n: p.default for n, p in inspect.signature(server).parameters.items()}
    assert (defaults["max_active_runs"], defaults["max_replicas"], defaults["max_gpus"]) == (
        ACTIVE_RUNS,
        REPLICAS,
        GPUS,
    )
