"""The gateway end to end, against real fake upstreams on loopback."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from archipel.core import CatalogSnapshot
from archipel.gateway import (
    FakeReply,
    FunctionUpstream,
    JsonlMeter,
    Meter,
    Replica,
    Upstream,
    UpstreamTimeoutError,
    parse_gateway_config,
)
from archipel.gateway._server import YOUNG_GC_THRESHOLD, settle_heap
from archipel.policy import Policy

from .harness import (
    REDIS_URL,
    SITES,
    Running,
    Site,
    eventually,
    free_port,
    gateway_doc,
    running,
)

Scenario = Callable[[Running], Awaitable[None]]


@pytest.fixture
def run(snapshot: CatalogSnapshot, policy: Policy) -> Callable[..., None]:
    """Run a scenario against a started gateway: ``run(scenario, sites=..., **config)``."""

    def go(
        scenario: Scenario,
        sites: dict[str, Site] | None = None,
        meter: Meter | None = None,
        upstream: Upstream | None = None,
        **overrides: object,
    ) -> None:
        async def main() -> None:
            sites_ = sites or SITES
            async with running(snapshot, policy, sites_, meter, upstream, **overrides) as gw:
                await scenario(gw)

        asyncio.run(main())

    return go


def test_openai_client_non_streaming(run: Callable[..., None]) -> None:
    """The official client gets a completion, and usage is metered from the upstream."""
    from openai import AsyncOpenAI

    async def scenario(gw: Running) -> None:
        async with AsyncOpenAI(api_key="sk-lab", base_url=f"{gw.url}/v1", max_retries=0) as client:
            answer = await client.chat.completions.create(
                model="llama", messages=[{"role": "user", "content": "hi"}]
            )
        assert answer.choices[0].message.content is not None
        assert answer.choices[0].message.content.startswith("Hello from")
        (record,) = gw.meter.records
        assert (record.tenant, record.model, record.status) == ("lab", "llama", 200)
        assert (record.input_tokens, record.output_tokens, record.tokens_counted) == (7, 5, False)
        assert str(record.cost) == "0.0000044"  # 7 * 0.20e-6 + 5 * 0.60e-6 EUR

    run(scenario)


def test_openai_client_streaming(run: Callable[..., None]) -> None:
    """Chunks pass through as server-sent events; the usage chunk is metered."""
    from openai import AsyncOpenAI

    async def scenario(gw: Running) -> None:
        async with AsyncOpenAI(api_key="sk-lab", base_url=f"{gw.url}/v1", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="llama",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts = [c.choices[0].delta.content async for c in stream if c.choices]
        assert "".join(p or "" for p in parts).startswith("Hello from")
        (record,) = gw.meter.records
        assert record.stream and record.output_tokens == 3 and not record.tokens_counted

    run(scenario)


def test_upstream_is_called_with_its_own_key_not_the_tenants(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        resp = await gw.chat("clinic")
        assert resp.status == 200
        assert gw.fakes["ovh"].authorizations == ["Bearer upstream-ovh"]

    run(scenario)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        pytest.param(None, 401, id="no key"),
        pytest.param("Bearer sk-wrong", 401, id="unknown key"),
        pytest.param("Basic sk-lab", 401, id="not bearer"),
    ],
)
def test_authentication(run: Callable[..., None], header: str | None, status: int) -> None:
    async def scenario(gw: Running) -> None:
        headers = {} if header is None else {"Authorization": header}
        resp = await gw.http.post(
            f"{gw.url}/v1/chat/completions", json={"model": "llama"}, headers=headers
        )
        body = await resp.json()
        assert resp.status == status
        assert body["error"]["code"] == "invalid_api_key"

    run(scenario)


def test_unknown_model_is_404_model_not_found(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        resp = await gw.chat(model="gpt-nothing")
        body = json.loads(await resp.read())
        assert resp.status == 404
        assert body["error"]["code"] == "model_not_found"

    run(scenario)


def test_models_lists_only_what_the_class_may_use(run: Callable[..., None]) -> None:
    """A model whose only replica is outside the health class is invisible to the clinic."""
    sites = {"aws": SITES["aws"]}

    async def scenario(gw: Running) -> None:
        seen = {}
        for tenant, key in (("lab", "sk-lab"), ("clinic", "sk-clinic")):
            resp = await gw.http.get(
                f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
            )
            seen[tenant] = [m["id"] for m in (await resp.json())["data"]]
        assert seen == {"lab": ["llama"], "clinic": []}
        resp = await gw.chat("clinic")
        body = json.loads(await resp.read())
        assert resp.status == 404
        assert "not available to data class `health`" in body["error"]["message"]
        assert gw.fakes["aws"].requests == []

    run(scenario, sites=sites)


@pytest.mark.parametrize("behaviour", ["error", "close", "hang", "overload"])
def test_failover_loses_no_request(run: Callable[..., None], behaviour: str) -> None:
    """One replica fails in some way; every client request still succeeds."""

    async def scenario(gw: Running) -> None:
        gw.fakes["aws"].behaviour = behaviour
        statuses = [(await gw.chat("lab")).status for _ in range(6)]
        assert statuses == [200] * 6
        assert all(r.replica == "llama/ovh" for r in gw.meter.records)

    run(scenario)


def test_a_replica_that_times_out_looks_slow_to_the_balancer(run: Callable[..., None]) -> None:
    """A timeout is a latency sample of at least the time waited, not only a breaker count."""

    async def scenario(gw: Running) -> None:
        gw.fakes["aws"].behaviour = "hang"  # first_byte is 0.5 s in the harness
        gw.gateway.states[0].ewma = 0.002
        gw.gateway.states[1].ewma = 0.001  # aws is the first choice
        assert (await gw.chat("lab")).status == 200
        assert gw.gateway.states[1].ewma >= 0.5 * 0.9  # the wait, folded into the average
        assert gw.gateway.states[1].breaker.failures == 1
        assert (await gw.chat("lab")).status == 200
        assert [r.attempts for r in gw.meter.records] == [2, 1]  # the slow one is avoided

    run(scenario)


def test_streaming_fails_over_before_the_first_byte(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        gw.fakes["ovh"].behaviour = "close"
        gw.fakes["aws"].behaviour = "close"
        gw.gateway.states[1].ewma = 1e-6  # make aws the first choice... it fails too
        resp = await gw.chat("lab", stream=True)
        assert resp.status == 502
        gw.fakes["aws"].behaviour = "ok"
        resp = await gw.chat("lab", stream=True)
        assert resp.status == 200
        assert b"data: [DONE]" in await resp.read()

    run(scenario)


def test_a_stream_cut_mid_way_ends_with_an_error_event(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        for fake in gw.fakes.values():
            fake.behaviour = "cut"
        resp = await gw.chat("lab", stream=True)
        body = await resp.read()
        assert resp.status == 200
        assert b'"error"' in body and b"[DONE]" not in body

    run(scenario)


def test_health_tenant_never_leaves_its_class_even_when_its_replica_fails(
    run: Callable[..., None],
) -> None:
    """The EU replica is down; the clinic gets errors, the US replica sees nothing."""

    async def scenario(gw: Running) -> None:
        gw.fakes["ovh"].behaviour = "error"
        statuses = [(await gw.chat("clinic")).status for _ in range(5)]
        stream = await gw.chat("clinic", stream=True)
        assert set(statuses) <= {502, 503}
        assert stream.status in {502, 503}
        assert gw.fakes["aws"].requests == []
        assert all(r.replica in (None, "llama/ovh") for r in gw.meter.records)

    run(scenario)


def test_full_pools_shed_with_429_and_retry_after(run: Callable[..., None]) -> None:
    sites = {"ovh": Site("ovhcloud", "gra", "FR", max_concurrency=1)}

    async def scenario(gw: Running) -> None:
        gw.fakes["ovh"].behaviour = "hang"
        first = asyncio.create_task(gw.chat("lab"))
        await asyncio.sleep(0.1)
        shed = await gw.chat("lab")
        assert shed.status == 429
        assert shed.headers["Retry-After"] == "1"
        gw.fakes["ovh"].behaviour = "ok"
        gw.fakes["ovh"].release()
        assert (await first).status == 200

    run(scenario, sites=sites)


def test_spillover_to_the_secondary_pool(run: Callable[..., None]) -> None:
    sites = {
        "ovh": Site("ovhcloud", "gra", "FR", max_concurrency=1),
        "scw": Site("scaleway", "fr-par", "FR", pool="secondary"),
    }

    async def scenario(gw: Running) -> None:
        gw.fakes["ovh"].behaviour = "hang"
        first = asyncio.create_task(gw.chat("clinic"))
        await asyncio.sleep(0.1)
        second = await gw.chat("clinic")
        assert second.status == 200
        assert second.headers["X-Archipel-Replica"] == "llama/scw"
        gw.fakes["ovh"].release()
        await first

    run(scenario, sites=sites, timeouts={"connect": 1, "first_byte": 5, "idle": 1})


def test_tenant_request_rate_limit(run: Callable[..., None]) -> None:
    from archipel.gateway import hash_key

    tenants = {
        "lab": {
            "key_sha256": [hash_key("sk-lab")],
            "data_class": "public",
            "limits": {"requests_per_minute": 2},
        },
        "clinic": {"key_sha256": [hash_key("sk-clinic")], "data_class": "health"},
    }

    async def scenario(gw: Running) -> None:
        statuses = [(await gw.chat("lab")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await gw.chat("clinic")).status == 200

    run(scenario, tenants=tenants)


def test_embeddings_and_completions_are_proxied(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        headers = {"Authorization": "Bearer sk-lab"}
        for path, body in (
            ("/v1/embeddings", {"model": "llama", "input": "hello"}),
            ("/v1/completions", {"model": "llama", "prompt": "hello"}),
        ):
            resp = await gw.http.post(f"{gw.url}{path}", json=body, headers=headers)
            assert resp.status == 200, await resp.text()
        assert [r.input_tokens for r in gw.meter.records] == [4, 3]

    run(scenario)


def test_metrics_expose_requests_and_replica_state(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        await gw.chat("lab")
        resp = await gw.http.get(f"{gw.url}/metrics")
        text = await resp.text()
        assert (
            'archipel_gateway_requests_total{model="llama",status="200",tenant="lab"} 1.0' in text
        )
        assert "archipel_gateway_circuit_state" in text
        assert 'archipel_gateway_upstream_attempts_total{outcome="ok"' in text
        assert 'archipel_gateway_request_seconds_count{model="llama"} 1.0' in text
        assert 'archipel_gateway_request_seconds_bucket{le="+Inf",model="llama"} 1.0' in text

    run(scenario)


def test_a_stream_that_stalls_ends_after_the_idle_timeout(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        for fake in gw.fakes.values():
            fake.behaviour = "stall"
        resp = await gw.chat("lab", stream=True)
        body = await resp.read()
        assert resp.status == 200
        assert b"upstream idle timeout" in body

    run(scenario)


def test_upstream_model_renames_the_model_for_that_replica(run: Callable[..., None]) -> None:
    sites = {"ovh": Site("ovhcloud", "gra", "FR", upstream_model="meta-llama/Llama-3.1-8B")}

    async def scenario(gw: Running) -> None:
        resp = await gw.chat("lab")
        assert resp.status == 200
        assert gw.fakes["ovh"].requests[-1]["model"] == "meta-llama/Llama-3.1-8B"
        assert gw.meter.records[-1].model == "llama"

    run(scenario, sites=sites)


def test_shutdown_writes_queued_usage_records(run: Callable[..., None], tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"

    async def scenario(gw: Running) -> None:
        for _ in range(3):
            assert (await gw.chat("lab")).status == 200

    run(scenario, meter=JsonlMeter(path))
    assert len(path.read_text().splitlines()) == 3


def test_retry_goes_to_another_provider_first(run: Callable[..., None]) -> None:
    """Two OVHcloud replicas and one Scaleway: after an OVHcloud failure, Scaleway is next."""
    sites = {
        "ovh-a": Site("ovhcloud", "gra", "FR"),
        "ovh-b": Site("ovhcloud", "sbg", "FR"),
        "scw": Site("scaleway", "fr-par", "FR", weight=0.01),  # least preferred at first
    }
    calls: list[str] = []

    async def handler(replica: Replica, path: str, body: bytes) -> FakeReply:
        calls.append(replica.name)
        if len(calls) == 1:
            raise UpstreamTimeoutError("first byte")
        return FakeReply(200, [b'{"choices": [], "usage": {"prompt_tokens": 1}}'])

    async def scenario(gw: Running) -> None:
        assert (await gw.chat("clinic")).status == 200
        assert calls[0].startswith("ovh-") and calls[1] == "scw"
        assert gw.meter.records[-1].attempts == 2

    run(scenario, sites=sites, upstream=FunctionUpstream(handler))


MANUAL_CHECKS = {"enabled": False, "timeout": 0.5, "unhealthy_after": 1, "healthy_after": 1}


def test_a_replica_failing_its_health_checks_gets_no_traffic(run: Callable[..., None]) -> None:
    """aws would answer requests, but its health check fails: traffic avoids it until it passes."""

    async def scenario(gw: Running) -> None:
        gw.fakes["aws"].behaviour = "unhealthy"
        await gw.gateway.check_round()
        assert [s.down for s in gw.gateway.states] == [False, True]
        assert [(await gw.chat("lab")).status for _ in range(6)] == [200] * 6
        assert gw.fakes["aws"].requests == []
        metrics = await (await gw.http.get(f"{gw.url}/metrics")).text()
        assert (
            'archipel_gateway_replica_up{provider="aws",region="us-east-1",replica="llama/aws"} 0.0'
            in metrics
        )

        gw.fakes["aws"].behaviour = "ok"
        await gw.gateway.check_round()
        assert [s.down for s in gw.gateway.states] == [False, False]
        gw.gateway.states[0].outstanding = 10  # make ovh the busier one
        assert (await gw.chat("lab")).status == 200
        assert len(gw.fakes["aws"].requests) == 1

    run(scenario, health_checks=MANUAL_CHECKS)


def test_when_every_replica_fails_its_checks_requests_are_still_served(
    run: Callable[..., None],
) -> None:
    async def scenario(gw: Running) -> None:
        for fake in gw.fakes.values():
            fake.behaviour = "unhealthy"
        await gw.gateway.check_round()
        assert all(s.down for s in gw.gateway.states)
        assert [(await gw.chat("lab")).status for _ in range(3)] == [200] * 3

    run(scenario, health_checks=MANUAL_CHECKS)


def test_health_checks_run_in_the_background(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        await eventually(lambda: not any(s.pending or s.down for s in gw.gateway.states), 20)
        checked = gw.fakes["ovh"].checks
        gw.fakes["aws"].behaviour = "error"
        await eventually(lambda: gw.gateway.states[1].down, 20)  # usually 0.1 s
        assert gw.fakes["ovh"].checks >= checked + 2  # two rounds at least: unhealthy_after
        assert not gw.gateway.states[0].down

    run(scenario, health_checks={"interval": 0.05, "timeout": 0.5, "unhealthy_after": 2})


REFUSAL = b'{"error": {"message": "prompt too long", "type": "invalid_request_error"}}'


@pytest.mark.parametrize("backend", ["local", "redis"])
@pytest.mark.parametrize("status", [400, 413], ids=["400 bad request", "413 too large"])
def test_a_request_the_upstream_refuses_is_not_billed(
    snapshot: CatalogSnapshot,
    policy: Policy,
    request: pytest.FixtureRequest,
    backend: str,
    status: int,
) -> None:
    """A refused request is metered with its status and zero tokens, and leaves the
    tenant's token budget as it was: the next request is not rate-limited."""
    from archipel.gateway import hash_key

    tenants = {
        "lab": {
            "key_sha256": [hash_key("sk-lab")],
            "data_class": "public",
            "limits": {"tokens_per_minute": 1000},
        },
    }
    limits: dict[str, object] = {"backend": "local"}
    if backend == "redis":
        prefix = request.getfixturevalue("prefix")
        limits = {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix}

    async def handler(replica: Replica, path: str, body: bytes) -> FakeReply:
        return FakeReply(status, [REFUSAL])

    async def main() -> None:
        async with running(
            snapshot,
            policy,
            upstream=FunctionUpstream(handler),
            rate_limits=limits,
            tenants=tenants,
        ) as gw:
            long_prompt = "x" * 40_000  # about 10,000 tokens by the estimate: 10 times the limit
            first = await gw.chat("lab", messages=[{"role": "user", "content": long_prompt}])
            await gw.gateway.limiter.flush()  # a charge, if any, has reached Redis
            second = await gw.chat("lab")
            assert (first.status, second.status) == (status, status)
            for record in gw.meter.records:
                assert (record.status, record.input_tokens, record.output_tokens) == (status, 0, 0)
                assert record.cost == 0 and not record.tokens_counted

    asyncio.run(main())


def test_a_502_names_the_replica_and_the_log_its_address(
    run: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    """The client learns which replica failed; hosts and ports stay in the gateway's log."""
    nowhere = free_port()

    async def scenario(gw: Running) -> None:
        ports = {**gw.ports, "ovh": nowhere}  # nothing listens there
        config = parse_gateway_config(gateway_doc(ports, SITES, retry={"max_attempts": 1}))
        gw.gateway.apply(config, gw.build(config))
        with caplog.at_level(logging.WARNING, logger="archipel.gateway"):
            resp = await gw.chat("clinic")
        error = (await resp.json())["error"]
        assert (resp.status, error["message"]) == (
            502,
            "upstream failed: llama/ovh: connection failed",
        )
        assert f":{nowhere}" in caplog.text and "llama/ovh" in caplog.text

    run(scenario)


def test_serving_freezes_what_is_loaded_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0  # what was loaded is out of the collector's view
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, before[1], before[2])
        assert before[0] < YOUNG_GC_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
