"""Routes published by the control plane: parsed, merged with the file's, applied live."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from archipel.core import CatalogSnapshot
from archipel.gateway import hash_key, merge_published, parse_gateway_config, parse_published
from archipel.policy import Policy

from .harness import Running, running


def replica(
    name: str, port: int, provider: str = "scaleway", country: str = "FR"
) -> dict[str, Any]:
    region = {"scaleway": "fr-par", "aws": "us-east-1"}[provider]
    return {
        "name": name,
        "provider": provider,
        "region": region,
        "country": country,
        "base_url": f"http://127.0.0.1:{port}/v1",
        "max_concurrency": 8,
        "weight": 1.0,
        "pool": "primary",
        "health_path": "/models",
        "price": {"currency": "USD", "input_per_million": "0.1", "output_per_million": "0.3"},
    }


# -- parsing and merging ------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param([], "`models` object", id="not an object"),
        pytest.param({"routes": {}}, "`models` object", id="no models"),
        pytest.param({"models": {"m": {"replicas": []}}}, "models.m.replicas", id="no replicas"),
        pytest.param(
            {"models": {"m": {"replicas": [{**replica("r1", 1), "base_url": "ftp://x"}]}}},
            "models.m.replicas.0.base_url",
            id="bad base url",
        ),
        pytest.param(
            {"models": {"m": {"replicas": [{**replica("r1", 1), "surprise": 1}]}}},
            "models.m.replicas.0.surprise",
            id="unknown field",
        ),
    ],
)
def test_an_invalid_answer_is_refused_with_the_field_named(document: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace(".", r"\.")):
        parse_published(document)


def _file(**extra: Any) -> Any:
    doc = {
        "tenants": {"lab": {"key_sha256": [hash_key("k")], "data_class": "public"}},
        "models": {"llama": {"replicas": [replica("file-1", 1)]}},
        **extra,
    }
    return parse_gateway_config(doc)


def test_published_models_join_the_files() -> None:
    published = parse_published(
        {
            "models": {
                "llama": {"replicas": [replica("file-1", 2), replica("run-7", 3)]},
                "mistral": {"replicas": [replica("run-8", 4)]},
            }
        }
    )
    merged = merge_published(_file(), published)
    assert [r.name for r in merged.models["llama"].replicas] == ["file-1", "run-7"]
    assert merged.models["llama"].replicas[0].base_url.endswith(":1/v1")  # the file's wins
    assert [r.name for r in merged.models["mistral"].replicas] == ["run-8"]


def test_published_replicas_get_the_control_planes_upstream_key() -> None:
    config = _file(control_plane={"url": "http://cp", "key_env": "SERVICE_KEY"})
    published = parse_published({"models": {"mistral": {"replicas": [replica("run-8", 4)]}}})
    merged = merge_published(config, published)
    assert merged.models["mistral"].replicas[0].key_env == "SERVICE_KEY"
    assert merged.models["llama"].replicas[0].key_env is None  # the file's are untouched


def test_a_gateway_may_start_with_no_models_if_a_control_plane_publishes_them() -> None:
    doc = {"tenants": {"lab": {"key_sha256": [hash_key("k")], "data_class": "public"}}}
    with pytest.raises(ValueError, match="control_plane"):
        parse_gateway_config(doc)
    assert parse_gateway_config({**doc, "control_plane": {"url": "http://cp"}}).models == {}


# -- live: a fake control plane ------------------------------------------------


@dataclass
class FakeControlPlane:
    """Serves ``document`` at /v1/routes with an ETag; ``status`` 500 fakes an outage."""

    document: dict[str, Any] = field(default_factory=lambda: {"models": {}})
    status: int = 200
    polls: int = 0
    unchanged: int = 0
    tokens: list[str | None] = field(default_factory=list)

    async def routes(self, request: web.Request) -> web.Response:
        self.polls += 1
        self.tokens.append(request.headers.get("Authorization"))
        if self.status != 200:
            return web.json_response({"detail": "down"}, status=self.status)
        body = json.dumps(self.document, sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.unchanged += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


@asynccontextmanager
async def control_plane() -> AsyncIterator[tuple[FakeControlPlane, str]]:
    fake = FakeControlPlane()
    app = web.Application()
    app.router.add_get("/v1/routes", fake.routes)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def published_gateway(
    snapshot: CatalogSnapshot, policy: Policy
) -> AsyncIterator[tuple[FakeControlPlane, Running, dict[str, Any]]]:
    """A fake control plane, and a gateway that polls it every 50 ms."""
    async with control_plane() as (cp, url):
        spec = {"url": url, "interval": 0.05, "timeout": 1}
        async with running(snapshot, policy, control_plane=spec) as gw:
            yield cp, gw, spec


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(400):  # up to 20 s on a loaded machine; usually a few polls
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not take the published routes")


async def _models(gw: Running, tenant_key: str) -> list[str]:
    resp = await gw.http.get(
        f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {tenant_key}"}
    )
    return [m["id"] for m in (await resp.json())["data"]]


def test_the_gateway_serves_what_the_control_plane_publishes(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    async def main() -> None:
        async with published_gateway(snapshot, policy) as (cp, gw, _):
            ovh, aws = gw.ports["ovh"], gw.ports["aws"]
            # an EU replica: both tenants may use it
            cp.document = {"models": {"mistral": {"replicas": [replica("run-1", ovh)]}}}
            await _until(lambda: "mistral" in gw.gateway.table.models)
            assert await _models(gw, "sk-clinic") == ["llama", "mistral"]
            assert (await gw.chat("clinic", model="mistral")).status == 200
            assert gw.fakes["ovh"].requests[-1]["model"] == "mistral"

            # the service moved to the US: the health tenant loses it, the lab keeps it
            cp.document = {
                "models": {"mistral": {"replicas": [replica("run-2", aws, "aws", "US")]}}
            }
            await _until(lambda: "mistral/run-2" in {r.id for r in gw.gateway.table.replicas})
            assert (await gw.chat("clinic", model="mistral")).status == 404
            assert (await gw.chat("lab", model="mistral")).status == 200
            assert gw.fakes["aws"].requests[-1]["model"] == "mistral"

            # nothing changed: the polls cost a 304 each
            polls = cp.polls
            await _until(lambda: cp.polls >= polls + 3)
            assert cp.unchanged >= 3

            # the control plane goes down: the last routes stay
            cp.status = 500
            await _until(lambda: gw.gateway.publisher is not None and not gw.gateway.publisher.up)
            assert (await gw.chat("lab", model="mistral")).status == 200
            metrics = await (await gw.http.get(f"{gw.url}/metrics")).text()
            assert "archipel_gateway_control_plane_up 0.0" in metrics

            # back, with nothing published: only the file's model is left
            cp.status, cp.document = 200, {"models": {}}
            await _until(lambda: "mistral" not in gw.gateway.table.models)
            assert await _models(gw, "sk-lab") == ["llama"]
            metrics = await (await gw.http.get(f"{gw.url}/metrics")).text()
            assert "mistral/run-2" not in metrics  # gone replicas leave no series behind

    asyncio.run(main())


def test_a_sighup_reload_keeps_the_published_routes(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    async def main() -> None:
        async with published_gateway(snapshot, policy) as (cp, gw, spec):
            cp.document = {"models": {"mistral": {"replicas": [replica("run-1", gw.ports["ovh"])]}}}
            await _until(lambda: "mistral" in gw.gateway.table.models)
            config = gw.configure(control_plane=spec, retry={"max_attempts": 2})
            gw.gateway.loader = lambda: config
            assert await gw.gateway.reload()
            assert gw.gateway.config.retry.max_attempts == 2
            assert "mistral" in gw.gateway.table.models

    asyncio.run(main())


def test_polls_carry_the_token_and_hand_over_only_changes() -> None:
    import aiohttp

    from archipel.gateway import PublishedRoutes
    from archipel.gateway._config import ControlPlane

    seen: list[dict[str, Any]] = []

    async def on_change(published: Any) -> None:
        seen.append(published)

    async def main() -> None:
        async with control_plane() as (cp, url), aiohttp.ClientSession() as session:
            routes = PublishedRoutes(ControlPlane(url=url), "t0ken", on_change)
            cp.document = {"models": {"m": {"replicas": [replica("run-1", 1)]}}}
            assert await routes.poll(session)
            assert not await routes.poll(session)  # 304
            cp.status = 500
            assert not await routes.poll(session)
            assert not routes.up
            cp.status = 200
            assert await routes.poll(session)  # after an outage, the whole answer again
            assert cp.tokens == ["Bearer t0ken"] * 4
            assert routes.polls == {"changed": 2, "unchanged": 1, "failed": 1}

    asyncio.run(main())
    assert [list(p) for p in seen] == [["m"], ["m"]]


@pytest.mark.parametrize(
    ("spec", "environ", "expected"),
    [
        pytest.param(None, {}, None, id="no control plane"),
        pytest.param({"url": "http://cp"}, {}, None, id="no token"),
        pytest.param({"url": "http://cp", "token_env": "CP"}, {"CP": "abc"}, "abc", id="env"),
        pytest.param({"url": "http://cp", "token_file": "t"}, {}, "from-file", id="file"),
    ],
)
def test_control_plane_token(spec: Any, environ: dict[str, str], expected: str | None) -> None:
    from archipel.gateway import resolve_control_plane_token

    doc = {
        "tenants": {"lab": {"key_sha256": [hash_key("k")], "data_class": "public"}},
        "models": {"llama": {"replicas": [replica("file-1", 1)]}},
    }
    if spec is not None:
        doc["control_plane"] = spec
    config = parse_gateway_config(doc)
    assert resolve_control_plane_token(config, environ, lambda path: "from-file\n") == expected


def test_a_missing_control_plane_token_stops_the_start() -> None:
    from archipel.gateway import GatewayConfigError, resolve_control_plane_token

    config = _file(control_plane={"url": "http://cp", "token_env": "CP_TOKEN"})
    with pytest.raises(GatewayConfigError, match="CP_TOKEN is unset"):
        resolve_control_plane_token(config, {}, lambda path: "")
