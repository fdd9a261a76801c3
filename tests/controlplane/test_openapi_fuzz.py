"""Schemathesis against the control plane's typed OpenAPI spec: every answer is documented.

Every operation gets requests generated from its schema, both valid ones
(real workloads, real query parameters) and invalid ones, sent in process
(ASGI) with an admin token so that the handlers behind authentication run.
Each answer must be no 5xx, a status code the operation documents, a content
type it documents, a body that matches the documented schema for that status
and, for an invalid request, a 4xx. Half the generated workloads ask for the
hardware the test sites have, so that whole workloads get through placement and
are stored. Bounded and reproducible: a fixed number of derandomized examples
per operation and mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from archipel.backends import FakeBackend
from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.controlplane._api import create_app
from archipel.core import CatalogSnapshot
from archipel.policy import Policy

from .conftest import SITES

#: what an invalid request may get: schemathesis's list, plus 413 (a body over
#: the server's size limit is refused before it is parsed) and without 5xx
REJECTED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}}
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, snapshot: CatalogSnapshot, policy: Policy
) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    store = Store(f"sqlite:///{folder / 'fuzz.db'}")
    store.migrate()
    sites = {s.name: Site(s, FakeBackend(s.name)) for s in SITES}
    reconciler = Reconciler(store, sites, SitePlacer(SITES, snapshot, policy), folder / "ck")
    token = store.create_token("acme", "admin")
    yield (
        schemathesis.openapi.from_asgi(
            "/openapi.json", create_app(store, reconciler), config=CONFIG
        ),
        token,
    )
    store.close()


def test_the_submission_body_is_typed(api: tuple[schemathesis.BaseSchema, str]) -> None:
    schema, _ = api
    body = schema.raw_schema["paths"]["/v1/runs"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    submission = schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"name", "kind", "resources", "run"} <= set(submission["required"])
    assert submission["additionalProperties"] is False


@pytest.mark.parametrize(
    "mode",
    [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    ids=["valid requests", "invalid requests"],
)
def test_every_generated_request_gets_a_documented_answer(
    api: tuple[schemathesis.BaseSchema, str], mode: schemathesis.GenerationMode
) -> None:
    schema, token = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    statuses: list[tuple[str, int]] = []
    for operation in operations:
        takes = (operation.body, operation.query, operation.path_parameters, operation.headers)
        if mode is schemathesis.GenerationMode.NEGATIVE and not any(takes):
            continue  # nothing in the request to make invalid
        cases = operation.as_strategy(generation_mode=mode)
        if mode is schemathesis.GenerationMode.POSITIVE and operation.label == "POST /v1/runs":
            cases = st.one_of(cases, cases.map(on_the_test_sites_hardware))

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def answered_as_documented(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
            )
            statuses.append((case.operation.label, response.status_code))

        answered_as_documented()
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert ("POST /v1/runs", 201) in statuses  # real workloads, not only refusals


def on_the_test_sites_hardware(case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    assert isinstance(body, dict) and isinstance(body["resources"], dict)
    body["resources"]["accelerators"] = "cpu:1"
    return case
