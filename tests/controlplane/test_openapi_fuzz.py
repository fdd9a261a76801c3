"""Schemathesis against the control plane's OpenAPI spec: no input makes a 500.

Bounded: a fixed number of generated requests per operation, in process (ASGI),
with a valid token so that the handlers behind authentication are exercised.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from archipel.backends import FakeBackend
from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.controlplane._api import create_app
from archipel.core import CatalogSnapshot
from archipel.policy import Policy

from .conftest import SITES


def test_no_generated_request_makes_the_api_fail(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fuzz.db'}")
    store.migrate()
    sites = {s.name: Site(s, FakeBackend(s.name)) for s in SITES}
    reconciler = Reconciler(store, sites, SitePlacer(SITES, snapshot, policy), tmp_path / "ck")
    token = store.create_token("acme", "admin")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store, reconciler))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:

        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        no_server_error()
    store.close()
