"""gateway.yaml validation: good documents load, bad ones name the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from archipel.gateway import (
    GatewayConfigError,
    Pool,
    hash_key,
    parse_gateway_config,
    resolve_upstream_keys,
)


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenants": {"lab": {"key_sha256": [hash_key("sk-lab")], "data_class": "public"}},
        "models": {
            "llama": {
                "replicas": [
                    {
                        "name": "ovh",
                        "provider": "ovhcloud",
                        "region": "gra",
                        "country": "FR",
                        "base_url": "http://127.0.0.1:9101/v1",
                        "key_env": "OVH_KEY",
                        "price": {"input_per_million": "0.20", "output_per_million": "0.60"},
                    }
                ]
            }
        },
    }
    base.update(changes)
    return base


def replica(**changes: Any) -> dict[str, Any]:
    r = dict(doc()["models"]["llama"]["replicas"][0])
    r.update(changes)
    return r


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        pytest.param(
            "http://user:secret@10.0.0.5:8000/v1", "key_env or key_file", id="credentials"
        ),
        pytest.param("http://user@10.0.0.5:8000/v1", "credentials", id="user only"),
        pytest.param("http://10.0.0.5:8000/v1?key=x", "query", id="query"),
        pytest.param("http://10.0.0.5:8000/v1#top", "fragment", id="fragment"),
        pytest.param("http:///v1", "http(s)://host", id="no host"),
        pytest.param("http://10.0.0.5:99999/v1", "not a valid URL", id="port out of range"),
    ],
)
def test_a_base_url_the_gateway_cannot_use_is_refused_at_load(base_url: str, says: str) -> None:
    with pytest.raises(GatewayConfigError) as info:
        parse_gateway_config(doc(models={"m": {"replicas": [replica(base_url=base_url)]}}))
    problem = info.value.problems[0]  # pydantic adds that the list of replicas came out empty
    assert problem.startswith("models.m.replicas[0].base_url: ")
    assert says in problem


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:9101/v1", "https://api.example.eu/v1", "http://[::1]:8000", "http://vllm"],
)
def test_usable_base_urls_load(base_url: str) -> None:
    config = parse_gateway_config(doc(models={"m": {"replicas": [replica(base_url=base_url)]}}))
    assert config.models["m"].replicas[0].base_url == base_url


def test_defaults_and_exact_prices() -> None:
    config = parse_gateway_config(doc())
    r = config.models["llama"].replicas[0]
    assert r.pool is Pool.PRIMARY and r.weight == 1.0
    assert r.price.input_per_million == Decimal("0.20")
    assert config.timeouts.first_byte == 60.0
    assert config.retry.max_attempts == 3
    assert config.requests.max_body_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param(doc(tenants={}), "tenants", id="no tenants"),
        pytest.param(
            doc(tenants={"a": {"key_sha256": ["nothex"], "data_class": "public"}}),
            "tenants.a",
            id="bad digest",
        ),
        pytest.param(
            doc(models={"m": {"replicas": [replica(country="France")]}}),
            "models.m.replicas[0]",
            id="bad country",
        ),
        pytest.param(
            doc(models={"m": {"replicas": [replica(base_url="ftp://x")]}}),
            "models.m.replicas[0].base_url",
            id="bad url",
        ),
        pytest.param(
            doc(models={"m": {"replicas": [replica(pool="tertiary")]}}),
            "models.m.replicas[0].pool",
            id="bad pool",
        ),
        pytest.param(
            doc(models={"m": {"replicas": [replica(max_concurrency=0)]}}),
            "models.m.replicas[0].max_concurrency",
            id="zero concurrency",
        ),
        pytest.param(
            doc(models={"m": {"replicas": [replica(), replica()]}}),
            "models.m",
            id="duplicate replica",
        ),
        pytest.param(doc(timeouts={"connect": -1}), "timeouts.connect", id="negative timeout"),
        pytest.param(doc(surprise=1), "surprise", id="unknown key"),
        pytest.param(
            doc(rate_limits={"backend": "memcached"}), "rate_limits.backend", id="unknown backend"
        ),
        pytest.param(
            doc(rate_limits={"backend": "redis", "redis_url": "127.0.0.1:6379"}),
            "rate_limits.redis_url",
            id="redis url without scheme",
        ),
        pytest.param(
            doc(
                tenants={
                    "a": {"key_sha256": [hash_key("k")], "data_class": "public"},
                    "b": {"key_sha256": [hash_key("k")], "data_class": "health"},
                }
            ),
            "share an API key",
            id="shared key",
        ),
    ],
)
def test_errors_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(GatewayConfigError) as info:
        parse_gateway_config(document, "gw.yaml")
    assert field in str(info.value)
    assert str(info.value).startswith("gw.yaml: invalid gateway config")


def test_upstream_keys_come_from_the_given_environment_and_reader() -> None:
    config = parse_gateway_config(
        doc(
            models={
                "m": {
                    "replicas": [
                        replica(name="a", key_env="A_KEY"),
                        replica(name="b", key_env=None, key_file="/secret/b"),
                        replica(name="c", key_env=None),
                    ]
                }
            }
        )
    )
    keys = resolve_upstream_keys(config, {"A_KEY": "ka"}, lambda path: f" from {path}\n")
    assert keys == {"m/a": "ka", "m/b": "from /secret/b"}


def test_a_missing_upstream_key_fails_at_start_up() -> None:
    config = parse_gateway_config(doc())
    with pytest.raises(GatewayConfigError, match=r"replicas\[0\]\.key_env: .*OVH_KEY"):
        resolve_upstream_keys(config, {}, lambda path: "")
