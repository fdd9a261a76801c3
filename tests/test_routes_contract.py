"""The routes the control plane publishes are the routes the gateway reads.

``GET /v1/routes`` is a contract between two packages that never import each
other: the control plane answers with ``_schemas.RoutesOut`` and the gateway
validates the answer with its own ``PublishedReplica`` (strict: an unknown
field is refused). These tests hold the two schemas together, so that a field
added on one side and not the other fails here, not in a deployment.
"""

from __future__ import annotations

import pytest

from archipel.controlplane._schemas import ModelRoutesOut, PriceOut, ReplicaOut, RoutesOut
from archipel.core import ServePrice
from archipel.gateway import parse_published
from archipel.gateway._config import PublishedReplica

#: what the gateway decides for itself when it takes a replica, never read from the answer
GATEWAY_ONLY = {"serves", "key_env", "key_file", "upstream_model"}


def _replica(**overrides: object) -> ReplicaOut:
    fields: dict[str, object] = {
        "name": "r-1",
        "tenant": "lab",
        "key": "svc_abc",
        "provider": "ovhcloud",
        "region": "GRA11",
        "country": "FR",
        "base_url": "http://10.0.0.7:8001/v1",
        "max_concurrency": 8,
        "weight": 2.5,
        "pool": "secondary",
        "health_path": "/models",
        "price": PriceOut(currency="EUR", input_per_million="0.15", output_per_million="0.6"),
    }
    return ReplicaOut.model_validate({**fields, **overrides})


def test_every_field_the_control_plane_sends_is_one_the_gateway_reads() -> None:
    assert set(ReplicaOut.model_fields) <= set(PublishedReplica.model_fields)
    assert set(PriceOut.model_fields) == set(ServePrice.model_fields)


def test_every_field_the_gateway_requires_is_sent() -> None:
    required = {n for n, f in PublishedReplica.model_fields.items() if f.is_required()}
    assert required <= set(ReplicaOut.model_fields)
    assert set(PublishedReplica.model_fields) - set(ReplicaOut.model_fields) == GATEWAY_ONLY


@pytest.mark.parametrize(
    "replica",
    [
        _replica(),
        _replica(key=None, country=None, pool="primary"),
        _replica(price=PriceOut(currency="USD", input_per_million="0", output_per_million="0")),
    ],
    ids=["every field", "no key, no country", "free"],
)
def test_an_answer_of_the_control_plane_parses_in_the_gateway_unchanged(
    replica: ReplicaOut,
) -> None:
    answer = RoutesOut(
        tenant="lab", models={"llama": ModelRoutesOut(owned_by="lab", replicas=[replica])}
    ).model_dump(mode="json")
    published = parse_published(answer)
    [(model, parsed)] = list(published.replicas())
    sent = replica.model_dump(mode="json")
    assert model == "llama"
    assert parsed.name == sent["name"] and parsed.tenant == sent["tenant"]
    assert (parsed.provider, parsed.region, parsed.country) == (
        sent["provider"],
        sent["region"],
        sent["country"],
    )
    assert (parsed.base_url, parsed.max_concurrency, parsed.weight, parsed.pool.value) == (
        sent["base_url"],
        sent["max_concurrency"],
        sent["weight"],
        sent["pool"],
    )
    assert parsed.health_path == sent["health_path"]
    assert parsed.key is None if sent["key"] is None else parsed.key.get_secret_value() == "svc_abc"
    assert {k: str(v) for k, v in parsed.price.model_dump().items()} == sent["price"]
