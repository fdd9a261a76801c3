"""Routes published by the control plane: parsed, merged with the file's, applied live."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archipel.core import CatalogSnapshot
from archipel.gateway import (
    Refusal,
    hash_key,
    merge_published,
    parse_gateway_config,
    parse_published,
)
from archipel.policy import Policy

from .harness import Running, running


def replica(
    name: str,
    port: int,
    provider: str = "scaleway",
    country: str = "FR",
    tenant: str = "acme",
    key: str | None = None,
) -> dict[str, Any]:
    region = {"scaleway": "fr-par", "aws": "us-east-1"}[provider]
    return {
        "name": name,
        "tenant": tenant,
        "key": key,
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


def file_replica(name: str, port: int) -> dict[str, Any]:
    """The same replica declared in gateway.yaml: no owner, no key of its own."""
    return {k: v for k, v in replica(name, port).items() if k not in ("tenant", "key")}


def answer(models: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    """A ``GET /v1/routes`` answer to a token of ``tenant``."""
    return {"tenant": tenant, "models": models}


# -- parsing and merging ------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param([], "`models` object", id="not an object"),
        pytest.param({"routes": {}}, "`models` object", id="no models"),
        pytest.param({"models": {}}, "tenant", id="no tenant: whose token is it?"),
        pytest.param(answer({"m": {"replicas": []}}), "models.m.replicas", id="no replicas"),
        pytest.param(
            answer({"m": {"replicas": [{**replica("r1", 1), "base_url": "ftp://x"}]}}),
            "models.m.replicas[0].base_url",
            id="bad base url",
        ),
        pytest.param(
            answer({"m": {"replicas": [{**replica("r1", 1), "surprise": 1}]}}),
            "models.m.replicas[0].surprise",
            id="unknown field",
        ),
        pytest.param(
            answer(
                {"m": {"replicas": [{k: v for k, v in replica("r1", 1).items() if k != "tenant"}]}}
            ),
            "models.m.replicas[0].tenant",
            id="a replica that names no owner",
        ),
    ],
)
def test_an_invalid_answer_is_refused_with_the_field_named(document: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_published(document)


def _file(**extra: Any) -> Any:
    doc = {
        "tenants": {"lab": {"key_sha256": [hash_key("k")], "data_class": "public"}},
        "models": {"llama": {"replicas": [file_replica("file-1", 1)]}},
        **extra,
    }
    return parse_gateway_config(doc)


def test_published_models_join_the_files() -> None:
    published = parse_published(
        answer(
            {
                "llama": {"replicas": [replica("file-1", 2), replica("run-7", 3)]},
                "mistral": {"replicas": [replica("run-8", 4)]},
            }
        )
    )
    merged = merge_published(_file(), published)
    assert [r.name for r in merged.models["llama"].replicas] == ["file-1", "run-7"]
    assert merged.models["llama"].replicas[0].base_url.endswith(":1/v1")  # the file's wins
    assert [r.name for r in merged.models["mistral"].replicas] == ["run-8"]


@pytest.mark.parametrize(
    ("owner", "issued", "named", "sent"),
    [
        pytest.param("acme", "svc-key", {}, "Bearer svc-key", id="own service: its own key"),
        pytest.param("acme", None, {}, "Bearer gw-key", id="own service, no key: key_env"),
        pytest.param("globex", None, {}, None, id="another owner's, no key: nothing"),
        pytest.param("globex", "its-key", {}, "Bearer its-key", id="another owner's: its key"),
        pytest.param(
            "acme",
            None,
            {"key_env": "SECRET", "key_file": None},
            "Bearer gw-key",
            id="a key_env the answer names is ignored",
        ),
        pytest.param(
            "globex",
            None,
            {"key_file": "/etc/secret"},
            None,
            id="a key_file the answer names is ignored",
        ),
    ],
)
def test_a_published_replica_is_sent_its_own_key_and_no_other(
    snapshot: CatalogSnapshot,
    policy: Policy,
    owner: str,
    issued: str | None,
    named: dict[str, Any],
    sent: str | None,
) -> None:
    from archipel.gateway import build_route_table, resolve_upstream_keys

    take = [{"from": "acme"}, {"from": "globex"}]
    config = _file(control_plane={"url": "http://cp", "key_env": "GW_KEY", "take": take})
    doc = {**replica("run-8", 4, tenant=owner, key=issued), **named}
    merged = merge_published(config, parse_published(answer({"mistral": {"replicas": [doc]}})))
    environ = {"GW_KEY": "gw-key", "SECRET": "the gateway's own secret"}
    keys = resolve_upstream_keys(merged, environ, lambda path: "from a file")
    table = build_route_table(merged, policy, snapshot, keys)
    [published] = [r for r in table.replicas if r.id == "mistral/run-8"]
    assert published.authorization == sent
    assert published.owner == owner


def test_a_gateway_may_start_with_no_models_if_a_control_plane_publishes_them() -> None:
    doc = {"tenants": {"lab": {"key_sha256": [hash_key("k")], "data_class": "public"}}}
    with pytest.raises(ValueError, match="control_plane"):
        parse_gateway_config(doc)
    assert parse_gateway_config({**doc, "control_plane": {"url": "http://cp"}}).models == {}


# -- whose services serve which tenants ----------------------------------------------

TENANTS_DOC = {
    "clinic": {"key_sha256": [hash_key("kc")], "data_class": "health"},
    "lab": {"key_sha256": [hash_key("kl")], "data_class": "public"},
}


@pytest.mark.parametrize(
    ("take", "served"),
    [
        pytest.param(
            None,
            {"llama/own": None},
            id="default: the token's own tenant's services, for every tenant",
        ),
        pytest.param([], {}, id="an empty list takes nothing"),
        pytest.param(
            [{"from": "acme"}, {"from": "globex", "tenants": ["lab"]}],
            {"llama/own": None, "llama/theirs": {"lab"}},
            id="another owner's, for one tenant",
        ),
        pytest.param(
            [{"from": "globex", "models": ["mistral"]}],
            {},
            id="another owner's, for another model only",
        ),
        pytest.param(
            [{"from": "globex", "tenants": ["lab"]}, {"from": "globex", "tenants": ["clinic"]}],
            {"llama/theirs": {"lab", "clinic"}},
            id="rules add up",
        ),
    ],
)
def test_take_rules_decide_which_published_replicas_serve_which_tenants(
    take: Any, served: dict[str, set[str] | None]
) -> None:
    from archipel.gateway._config import PublishedReplica
    from archipel.gateway._published import ignored

    spec: dict[str, Any] = {"url": "http://cp"}
    if take is not None:
        spec["take"] = take
    config = parse_gateway_config({"tenants": TENANTS_DOC, "control_plane": spec})
    published = parse_published(
        answer({"llama": {"replicas": [replica("own", 1), replica("theirs", 2, tenant="globex")]}})
    )
    merged = merge_published(config, published)
    got = {
        f"{model}/{r.name}": (None if r.serves is None else set(r.serves))
        for model, m in merged.models.items()
        for r in m.replicas
        if isinstance(r, PublishedReplica)
    }
    assert got == served
    owners = {"llama/own": "acme", "llama/theirs": "globex"}
    assert ignored(config, published) == [(rid, owners[rid]) for rid in owners if rid not in served]


def test_a_take_rule_naming_an_unknown_tenant_is_refused() -> None:
    from archipel.gateway import GatewayConfigError

    spec = {"url": "http://cp", "take": [{"from": "globex", "tenants": ["clnic"]}]}
    with pytest.raises(
        GatewayConfigError, match=r"control_plane\.take\[0\]\.tenants: no tenant clnic"
    ):
        parse_gateway_config({"tenants": TENANTS_DOC, "control_plane": spec})


# -- live: a fake control plane ------------------------------------------------


@dataclass
class FakeControlPlane:
    """Serves ``document`` at /v1/routes with an ETag; ``status`` 500 fakes an outage."""

    document: dict[str, Any] = field(default_factory=lambda: answer({}))
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
            cp.document = answer({"mistral": {"replicas": [replica("run-1", ovh)]}})
            await _until(lambda: "mistral" in gw.gateway.table.models)
            assert await _models(gw, "sk-clinic") == ["llama", "mistral"]
            assert (await gw.chat("clinic", model="mistral")).status == 200
            assert gw.fakes["ovh"].requests[-1]["model"] == "mistral"

            # the service moved to the US: the health tenant loses it, the lab keeps it
            cp.document = answer({"mistral": {"replicas": [replica("run-2", aws, "aws", "US")]}})
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
            cp.status, cp.document = 200, answer({})
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
            cp.document = answer({"mistral": {"replicas": [replica("run-1", gw.ports["ovh"])]}})
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
            cp.document = answer({"m": {"replicas": [replica("run-1", 1)]}})
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
    assert [list(p.models) for p in seen] == [["m"], ["m"]]


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
        "models": {"llama": {"replicas": [file_replica("file-1", 1)]}},
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


# -- no tenant's request reaches a replica its owner may not serve it ---------------

OWNERS = ["acme", "globex", "initech"]
GATEWAY_TENANTS = ["clinic", "lab"]

rules = st.lists(
    st.fixed_dictionaries(
        {
            "from": st.sampled_from(OWNERS),
            "tenants": st.none() | st.lists(st.sampled_from(GATEWAY_TENANTS), unique=True),
        }
    ),
    max_size=4,
)
published_replicas = st.lists(
    st.tuples(st.sampled_from(OWNERS), st.sampled_from(["primary", "secondary"])),
    min_size=1,
    max_size=6,
)
traffic = st.lists(
    st.tuples(
        st.sampled_from(GATEWAY_TENANTS),
        st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=4),
        st.floats(0, 20),
    ),
    max_size=30,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(take=rules, owners=published_replicas, requests=traffic)
def test_no_pick_is_a_replica_whose_owner_may_not_serve_the_tenant_even_through_failures(
    snapshot: CatalogSnapshot, policy: Policy, take: Any, owners: Any, requests: Any
) -> None:
    """Random take rules, owners and failures: every first attempt, retry and failover of
    every tenant lands on the file's replica or on one whose owner a rule takes for it."""
    from archipel.gateway import build_route_table, pick
    from archipel.gateway._failover import new_states

    config = parse_gateway_config(
        {
            "tenants": TENANTS_DOC,
            "control_plane": {"url": "http://cp", "take": take},
            "models": {"llama": {"replicas": [file_replica("file-1", 1)]}},
        }
    )
    docs = [
        {**replica(f"run-{i}", 10 + i, tenant=owner, key=f"key-{i}"), "pool": pool}
        for i, (owner, pool) in enumerate(owners)
    ]
    merged = merge_published(config, parse_published(answer({"llama": {"replicas": docs}})))
    table = build_route_table(merged, policy, snapshot)

    def entitled(owner: str, tenant: str) -> bool:  # the rules, read independently
        return any(
            r["from"] == owner and (r["tenants"] is None or tenant in r["tenants"]) for r in take
        )

    owner_of = {f"llama/run-{i}": owner for i, (owner, _) in enumerate(owners)}
    states = new_states(table.replicas, 2, 5)
    now = 0.0
    for tenant, outcomes, dt in requests:
        now += dt
        route = table.tenants[tenant]["llama"]
        tried: list[Any] = []
        for outcome in outcomes:
            choice = pick(route, states, now, tried)
            if isinstance(choice, Refusal):
                break
            if choice.id != "llama/file-1":
                assert choice.owner == owner_of[choice.id]
                assert entitled(owner_of[choice.id], tenant), (choice.id, tenant)
                assert choice.authorization == f"Bearer key-{choice.id.split('-')[-1]}"
            tried.append(choice)
            states[choice.index].breaker.on_attempt()
            if outcome == "ok":
                states[choice.index].breaker.on_success(now)
                break
            states[choice.index].breaker.on_failure(now)


def test_another_owners_service_serves_only_the_tenants_it_is_taken_for(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """The issue's case: a tenant's service publishes the model the gateway serves, in the
    EU. It gets none of the clinic's prompts, even when the clinic's own replica fails, and
    the lab's reach it with that service's own key only."""
    from archipel.gateway.fake_upstream import FakeUpstream

    async def main() -> None:
        theirs = FakeUpstream("theirs")
        app_runner = web.AppRunner(theirs.app)
        await app_runner.setup()
        await web.TCPSite(app_runner, "127.0.0.1", 0).start()
        port = app_runner.addresses[0][1]
        try:
            async with control_plane() as (cp, url):
                take = [{"from": "acme"}, {"from": "globex", "tenants": ["lab"]}]
                spec = {"url": url, "interval": 0.05, "timeout": 1, "take": take}
                async with running(snapshot, policy, control_plane=spec) as gw:
                    mine = replica("theirs", port, tenant="globex", key="globex-service-key")
                    cp.document = answer({"llama": {"replicas": [mine]}})
                    await _until(
                        lambda: "llama/theirs" in {r.id for r in gw.gateway.table.replicas}
                    )
                    for _ in range(12):
                        assert (await gw.chat("clinic")).status == 200
                    assert theirs.requests == []
                    gw.fakes["ovh"].behaviour = "error"  # failover has nowhere else to go
                    for _ in range(3):
                        assert (await gw.chat("clinic")).status in (502, 503)
                    assert theirs.requests == []
                    gw.fakes["ovh"].behaviour = "ok"
                    for _ in range(12):
                        assert (await gw.chat("lab")).status == 200
                    assert theirs.requests, "the lab, which takes globex's services, uses it"
                    assert set(theirs.authorizations) == {"Bearer globex-service-key"}
        finally:
            theirs.release()
            await app_runner.cleanup()

    asyncio.run(main())


def test_a_reload_applies_new_take_rules_at_once_and_counts_what_they_leave_out(
    snapshot: CatalogSnapshot, policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with control_plane() as (cp, url):
            spec = {"url": url, "interval": 0.05, "timeout": 1, "take": [{"from": "globex"}]}
            async with running(snapshot, policy, control_plane=spec) as gw:
                theirs = replica("run-1", gw.ports["ovh"], tenant="globex")
                cp.document = answer({"mistral": {"replicas": [theirs]}})
                await _until(lambda: "mistral" in gw.gateway.table.models)
                assert await _models(gw, "sk-lab") == ["llama", "mistral"]

                narrower = {**spec, "take": [{"from": "globex", "tenants": ["clinic"]}]}
                gw.gateway.loader = lambda: gw.configure(control_plane=narrower)
                assert await gw.gateway.reload()
                assert await _models(gw, "sk-lab") == ["llama"]
                assert (await gw.chat("lab", model="mistral")).status == 404
                assert await _models(gw, "sk-clinic") == ["llama", "mistral"]

                gw.gateway.loader = lambda: gw.configure(control_plane={**spec, "take": []})
                assert await gw.gateway.reload()
                assert await _models(gw, "sk-clinic") == ["llama"]
                metrics = await (await gw.http.get(f"{gw.url}/metrics")).text()
                line = 'archipel_gateway_control_plane_ignored_replicas{owner="globex"} 1.0'
                assert line in metrics

    with caplog.at_level("INFO", logger="archipel.gateway"):
        asyncio.run(main())
    assert not [r for r in caplog.records if "restart the gateway" in r.getMessage()]
    left_out = [r for r in caplog.records if "not routing to mistral/run-1" in r.getMessage()]
    assert len(left_out) == 1


def test_the_start_up_log_says_which_tenant_may_not_use_which_published_replica(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    from archipel.core import Reason
    from archipel.gateway import build_route_table, describe_routes

    take = [{"from": "acme"}, {"from": "globex", "tenants": ["lab"]}]
    config = parse_gateway_config(
        {"tenants": TENANTS_DOC, "control_plane": {"url": "http://cp", "take": take}}
    )
    doc = answer(
        {"llama": {"replicas": [replica("own", 1), replica("theirs", 2, tenant="globex")]}}
    )
    table = build_route_table(merge_published(config, parse_published(doc)), policy, snapshot)
    assert [r.id for r in table.tenants["clinic"]["llama"].replicas] == ["llama/own"]
    assert [r.id for r in table.tenants["lab"]["llama"].replicas] == ["llama/own", "llama/theirs"]
    assert table.tenants["lab"] is table.by_data_class["public"]  # nothing barred: shared as it is
    [(rid, why)] = table.tenants["clinic"]["llama"].rejected
    assert rid == "llama/theirs" and why[0].reason is Reason.NOT_ENTITLED
    lines = describe_routes(table)
    assert "tenant clinic / llama: llama/own (primary)" in lines
    assert any("not llama/theirs: a service of tenant globex" in line for line in lines)
    assert not any(line.startswith("tenant lab") for line in lines)
