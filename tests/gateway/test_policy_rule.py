"""The gateway's own policy decides where its tenants' data may go.

The control plane places a service under its policy and publishes where it
runs; the gateway judges each published replica again under its own policy
file, for each of its tenants' data classes. When the two policies disagree,
the gateway's wins: a replica the control plane placed is routed only to the
data classes the gateway's policy allows there (docs/gateway.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from archipel.controlplane import SitePlacer, SiteSpec
from archipel.core import CatalogSnapshot, Reason, parse_workload
from archipel.gateway import (
    build_route_table,
    hash_key,
    merge_published,
    parse_gateway_config,
    parse_published,
)
from archipel.policy import Policy, load_policy_text

#: the gateway operator's policy: the control plane's default, except that data of
#: class internal must stay in the EU/EEA
GATEWAY_POLICY = """
version: 1
name: gateway-operator
data_classes:
  public:
    rules: []
  internal:
    rules:
      - vetted_provider
      - site_in: [eu_eea]
"""

SITES = {
    "virginia": SiteSpec(
        name="virginia", backend="local", provider="aws", region="us-east-1", country="US"
    ),
    "paris": SiteSpec(
        name="paris", backend="local", provider="scaleway", region="fr-par", country="FR"
    ),
}
SERVICE = {
    "name": "llama",
    "kind": "inference",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "internal"},
    "serve": {"model": "llama"},
}


def published_where_placed(site: SiteSpec) -> dict[str, Any]:
    """The control plane's ``GET /v1/routes`` answer for a service running on ``site``."""
    return {
        "tenant": "acme",
        "models": {
            "llama": {
                "replicas": [
                    {
                        "name": f"llama-{site.name}",
                        "tenant": "acme",
                        "provider": site.provider,
                        "region": site.region,
                        "country": site.country,
                        "base_url": "http://127.0.0.1:9101/v1",
                    }
                ]
            }
        },
    }


@pytest.mark.parametrize(
    ("site", "routed"),
    [
        pytest.param("virginia", False, id="control plane allows, gateway forbids: not routed"),
        pytest.param("paris", True, id="both allow: routed"),
    ],
)
def test_the_gateway_routes_a_placed_replica_only_where_its_own_policy_allows(
    snapshot: CatalogSnapshot, policy: Policy, site: str, routed: bool
) -> None:
    spec = SITES[site]
    control_plane = SitePlacer([spec], snapshot, policy)  # the shipped default policy
    assert control_plane.place(parse_workload(SERVICE)).site == site

    tenants = {
        "acme": {"key_sha256": [hash_key("k-acme")], "data_class": "internal"},
        "web": {"key_sha256": [hash_key("k-web")], "data_class": "public"},
    }
    config = parse_gateway_config({"tenants": tenants, "control_plane": {"url": "http://cp"}})
    merged = merge_published(config, parse_published(published_where_placed(spec)))
    gateway_policy = load_policy_text(GATEWAY_POLICY, "gateway policy")
    table = build_route_table(merged, gateway_policy, snapshot)

    assert table.tenant_models("acme") == (["llama"] if routed else [])
    assert table.tenant_models("web") == ["llama"]  # public data may go anywhere
    route = table.by_data_class["internal"]["llama"]
    if routed:
        assert [r.provider for r in route.replicas] == [spec.provider]
    else:
        assert route.replicas == ()
        [(replica, why)] = route.rejected
        assert replica.endswith(f"llama-{site}")
        assert [r.reason for r in why] == [Reason.COUNTRY]
