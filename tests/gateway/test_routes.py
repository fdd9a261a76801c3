"""The route table: policy decides once per replica, at load."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from archipel.core import CatalogSnapshot, Reason
from archipel.gateway import (
    GatewayConfigError,
    Match,
    build_route_table,
    describe_routes,
    hash_key,
    parse_gateway_config,
)
from archipel.policy import Policy


def config(tenant_classes: dict[str, str], sites: list[tuple[str, str, str, str | None]]) -> Any:
    return parse_gateway_config(
        {
            "tenants": {
                t: {"key_sha256": [hash_key(t)], "data_class": c} for t, c in tenant_classes.items()
            },
            "models": {
                "llama": {
                    "replicas": [
                        {
                            "name": name,
                            "provider": provider,
                            "region": region,
                            "country": country,
                            "base_url": "http://127.0.0.1:1/v1",
                            "pool": "secondary" if name.endswith("-2") else "primary",
                            "price": {"input_per_million": "1", "output_per_million": "3"},
                        }
                        for name, provider, region, country in sites
                    ]
                }
            },
        }
    )


SITES = [
    ("ovh", "ovhcloud", "gra", "FR"),
    ("scw-2", "scaleway", "fr-par", "FR"),
    ("aws-eu", "aws", "eu-west-3", "FR"),
    ("aws-us", "aws", "us-east-1", "US"),
    ("vast", "vast", "any", None),
]


@pytest.mark.parametrize(
    ("data_class", "allowed"),
    [
        pytest.param("public", {"ovh", "scw-2", "aws-eu", "aws-us", "vast"}, id="public"),
        pytest.param("internal", {"ovh", "scw-2", "aws-eu", "aws-us"}, id="internal"),
        pytest.param("personal", {"ovh", "scw-2", "aws-eu"}, id="personal"),
        pytest.param("health", {"ovh", "scw-2"}, id="health"),
    ],
)
def test_allowed_replicas_per_class(
    snapshot: CatalogSnapshot, policy: Policy, data_class: str, allowed: set[str]
) -> None:
    table = build_route_table(config({"t": data_class}, SITES), policy, snapshot)
    match, route = table.lookup(data_class, "llama")
    assert match is Match.FULL and route is not None
    assert {r.name for r in route.replicas} == allowed
    assert {rid.split("/")[1] for rid, _ in route.rejected} == {s[0] for s in SITES} - allowed
    assert [r.name for r in route.secondary] == ["scw-2"]


def test_every_rejection_keeps_its_policy_reason(snapshot: CatalogSnapshot, policy: Policy) -> None:
    table = build_route_table(config({"t": "health"}, SITES), policy, snapshot)
    route = table.by_data_class["health"]["llama"]
    reasons = {rid: {r.reason for r in why} for rid, why in route.rejected}
    assert reasons["llama/aws-eu"] == {Reason.CLOUD_ACT}
    assert reasons["llama/aws-us"] == {Reason.COUNTRY, Reason.CLOUD_ACT}
    assert any("not llama/aws-us" in line for line in describe_routes(table))


def test_a_model_with_no_allowed_replica_is_a_partial_match(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = build_route_table(config({"t": "health"}, [SITES[3]]), policy, snapshot)
    assert table.lookup("health", "llama")[0] is Match.PARTIAL
    assert table.lookup("health", "mistral")[0] is Match.NONE
    assert table.allowed_models("health") == []


def test_unknown_data_class_names_the_tenant(snapshot: CatalogSnapshot, policy: Policy) -> None:
    with pytest.raises(GatewayConfigError, match=r"tenants\.t\.data_class: unknown data class"):
        build_route_table(config({"t": "secret"}, SITES), policy, snapshot)


def test_prices_are_per_token_decimals_and_keys_are_not_in_repr(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = build_route_table(
        config({"t": "public"}, SITES[:1]), policy, snapshot, {"llama/ovh": "s3cret"}
    )
    (r,) = table.replicas
    assert r.cost(1_000_000, 1_000_000) == Decimal(4)
    assert r.authorization == "Bearer s3cret"
    assert "s3cret" not in repr(r)
