"""The shipped example config loads and routes as its comments say."""

from __future__ import annotations

from pathlib import Path

import yaml

from archipel.core import CatalogSnapshot
from archipel.gateway import build_route_table, parse_gateway_config
from archipel.policy import Policy

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway" / "gateway.yaml"


def test_example_routes_health_to_the_eu_replica_only(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    config = parse_gateway_config(yaml.safe_load(EXAMPLE.read_text()), str(EXAMPLE))
    table = build_route_table(config, policy, snapshot)
    assert [r.name for r in table.by_data_class["health"]["llama-3.1-8b"].replicas] == ["ovh-gra"]
    assert [r.name for r in table.by_data_class["public"]["llama-3.1-8b"].replicas] == [
        "ovh-gra",
        "aws-use1",
    ]


def test_the_control_plane_example_starts_with_no_model_of_its_own(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    path = EXAMPLE.with_name("controlplane.yaml")
    config = parse_gateway_config(yaml.safe_load(path.read_text()), str(path))
    assert config.control_plane is not None
    assert config.control_plane.url == "http://127.0.0.1:8470"  # `archipel server`'s default
    assert config.models == {}
    assert build_route_table(config, policy, snapshot).replicas == ()
