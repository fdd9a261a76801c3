"""A service on a real Slurm site is routed at the node its job runs on.

The test cluster's one node is this machine (``hostname -s``, at 127.0.0.1); the
service binds the name Slurm gives the job (``SLURMD_NODENAME``), so the route
that the control plane publishes is the one a gateway elsewhere would follow.
"""

from __future__ import annotations

import shlex
import socket
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.controlplane._api import create_app
from archipel.core import CatalogSnapshot, parse_workload
from archipel.policy import Policy

from .conftest import SLURM_SITES, slurm_backend

SITE = SLURM_SITES[0]  # partition eu-fr, scaleway/fr-par


def test_a_service_on_slurm_is_routed_at_its_node(
    slurm_conf: Path, tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    backend = slurm_backend(SITE, slurm_conf, tmp_path / "site")
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    reconciler = Reconciler(
        store, {SITE.name: Site(SITE, backend)}, SitePlacer([SITE], snapshot, policy), tmp_path
    )
    api = TestClient(create_app(store, reconciler))
    viewer = {"Authorization": f"Bearer {store.create_token('acme', 'viewer')}"}
    serve = (
        f"exec {shlex.quote(sys.executable)} -m archipel.gateway.fake_upstream "
        '--host "$SLURMD_NODENAME" --port "$ARCHIPEL_PORT" --name slurm'
    )
    run = store.submit(
        "acme",
        parse_workload(
            {
                "name": "llama-on-slurm",
                "kind": "inference",
                "resources": {"accelerators": "cpu:1"},
                "run": {"command": ["/bin/sh", "-c", serve]},
                "serve": {"model": "llama-3.1-8b"},
            }
        ),
    )

    def answering() -> str | None:
        reconciler.step()
        models = api.get("/v1/routes", headers=viewer).json()["models"]
        if not models:
            return None
        replica = models["llama-3.1-8b"]["replicas"][0]
        url = str(replica["base_url"])
        key = {"Authorization": f"Bearer {replica['key']}"}  # the service checks its key
        try:
            ok = httpx.get(f"{url}/models", headers=key, timeout=2).status_code == 200
            return url if ok else None
        except httpx.TransportError:
            return None

    try:
        deadline = time.monotonic() + 60
        while (url := answering()) is None:
            assert time.monotonic() < deadline, [e.detail for e in store.events(run.id)]
            time.sleep(0.2)
        port = store.attempts(run.id)[0].port
        node = socket.gethostname().split(".")[0]
        assert url == f"http://{node}:{port}/v1"
        assert store.attempts(run.id)[0].host == node
    finally:
        latest = store.get(run.id)
        if latest is not None:
            reconciler.cancel(latest)
        store.close()
