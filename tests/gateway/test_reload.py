"""Hot reload: a new configuration applies to new requests; requests in flight finish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import yaml

from archipel.core import CatalogSnapshot
from archipel.gateway import (
    BreakerState,
    FakeReply,
    FunctionUpstream,
    GatewayConfig,
    GatewayConfigError,
    Replica,
    hash_key,
)
from archipel.policy import Policy

from .harness import SITES, TENANTS, Running, eventually, free_port, running, wait_until

Scenario = Callable[[Running], Awaitable[None]]
NEWCOMER = {"key_sha256": [hash_key("sk-new")], "data_class": "public"}


def _tenants(**extra: object) -> dict[str, object]:
    out: dict[str, object] = {
        t: {"key_sha256": [hash_key(key)], "data_class": cls} for t, (key, cls) in TENANTS.items()
    }
    out.update(extra)
    return out


@pytest.fixture
def run(snapshot: CatalogSnapshot, policy: Policy) -> Callable[..., None]:
    def go(scenario: Scenario, upstream: FunctionUpstream | None = None) -> None:
        async def main() -> None:
            async with running(snapshot, policy, SITES, upstream=upstream) as gw:
                await scenario(gw)

        asyncio.run(main())

    return go


async def _models(gw: Running, key: str) -> int:
    resp = await gw.http.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    await resp.read()
    return resp.status


def test_a_reload_adds_and_removes_tenants(run: Callable[..., None]) -> None:
    async def scenario(gw: Running) -> None:
        assert await _models(gw, "sk-new") == 401
        config = gw.configure(tenants=_tenants(newcomer=NEWCOMER))
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert await _models(gw, "sk-new") == 200
        assert gw.gateway.routing.generation == 2

        del_lab = _tenants()
        del del_lab["lab"]
        config = gw.configure(tenants=del_lab)
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert await _models(gw, "sk-lab") == 401
        assert await _models(gw, "sk-clinic") == 200

    run(scenario)


def test_a_configuration_that_fails_to_load_changes_nothing(run: Callable[..., None]) -> None:
    def broken() -> GatewayConfig:
        raise GatewayConfigError("gateway.yaml", ["tenants.lab.data_class: field required"])

    async def scenario(gw: Running) -> None:
        before = gw.gateway.routing
        gw.gateway.loader = broken
        assert not await gw.gateway.reload()
        assert gw.gateway.routing is before
        assert (await gw.chat("lab")).status == 200
        resp = await gw.http.get(f"{gw.url}/metrics")
        text = await resp.text()
        assert 'archipel_gateway_config_reloads_total{result="failed"} 1.0' in text
        assert "archipel_gateway_config_generation 1.0" in text

    run(scenario)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_requests_in_flight_finish_on_the_configuration_they_started_with(
    run: Callable[..., None], stream: bool
) -> None:
    """The replica serving a request and the tenant sending it both vanish mid-request."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def handler(replica: Replica, path: str, body: bytes) -> FakeReply:
        entered.set()
        await gate.wait()
        chunks = [b'data: {"choices": []}\n\n', b"data: [DONE]\n\n"] if stream else [b"{}"]
        return FakeReply(200, chunks, {"Content-Type": "text/event-stream" if stream else "x"})

    async def scenario(gw: Running) -> None:
        only_ovh = {"ovh": SITES["ovh"]}
        in_flight = asyncio.create_task(gw.chat("lab", stream=stream))
        await entered.wait()
        tenants = _tenants(newcomer=NEWCOMER)
        del tenants["lab"]
        config = gw.configure(only_ovh, tenants=tenants)
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert await _models(gw, "sk-lab") == 401  # new requests see the new configuration
        gate.set()
        resp = await in_flight
        assert resp.status == 200
        (record,) = [r for r in gw.meter.records if r.tenant == "lab"]
        assert record.status == 200

    run(scenario, FunctionUpstream(handler))


def test_replica_health_and_breaker_settings_carry_over_a_reload(
    run: Callable[..., None],
) -> None:
    async def scenario(gw: Running) -> None:
        aws = gw.gateway.states[1]
        for _ in range(gw.gateway.config.breaker.failure_threshold):
            aws.breaker.on_failure(gw.gateway.clock())
        assert aws.breaker.state is BreakerState.OPEN
        aws.ewma = 0.25  # the same object carries it: see `is aws` below

        config = gw.configure(breaker={"failure_threshold": 7, "cooldown": 30})
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert gw.gateway.states[1] is aws
        assert aws.breaker.state is BreakerState.OPEN
        assert aws.breaker.threshold == 7

    run(scenario)


def test_a_replica_at_a_new_address_starts_afresh_and_is_checked_at_once(
    run: Callable[..., None],
) -> None:
    """A closed circuit, no traffic until its first health check passes, and that check
    comes with the reload, not at the next round (an hour away here)."""

    async def scenario(gw: Running) -> None:
        hourly = {"interval": 3600, "timeout": 1}
        config = gw.configure(health_checks=hourly)
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        await eventually(lambda: not any(s.pending or s.down for s in gw.gateway.states))
        aws = gw.gateway.states[1]
        for _ in range(gw.gateway.config.breaker.failure_threshold):
            aws.breaker.on_failure(gw.gateway.clock())
        checks = gw.fakes["ovh"].checks

        gw.ports["aws"] = gw.ports["ovh"]  # "aws" now answers at another address
        config = gw.configure(health_checks=hourly)
        assert await gw.gateway.reload()
        fresh = gw.gateway.states[1]
        assert fresh is not aws
        assert fresh.breaker.state is BreakerState.CLOSED
        await eventually(lambda: not fresh.pending)
        assert not fresh.down
        assert gw.fakes["ovh"].checks == checks + 1  # only the new replica was checked
        gw.gateway.states[0].outstanding = 10  # make the other one the busier one
        assert (await gw.chat("lab")).status == 200
        assert len(gw.fakes["ovh"].requests) == 1  # through the new address

    run(scenario)


def test_unchanged_rate_limits_keep_their_buckets(run: Callable[..., None]) -> None:
    limited = _tenants()
    limited["lab"] = {**limited["lab"], "limits": {"requests_per_minute": 2}}  # type: ignore[dict-item]

    async def scenario(gw: Running) -> None:
        config = gw.configure(tenants=limited)
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert [(await gw.chat("lab")).status for _ in range(3)] == [200, 200, 429]
        assert await gw.gateway.reload()  # same limits: a reload does not refill the bucket
        assert (await gw.chat("lab")).status == 429
        raised = _tenants()
        raised["lab"] = {**raised["lab"], "limits": {"requests_per_minute": 5}}  # type: ignore[dict-item]
        config = gw.configure(tenants=raised)
        gw.gateway.loader = lambda: config
        assert await gw.gateway.reload()
        assert (await gw.chat("lab")).status == 200  # new limits, new bucket

    run(scenario)


@pytest.mark.parametrize(
    ("change", "pending"),
    [
        ({"listen": {"host": "127.0.0.1", "port": 1}}, ["listen"]),
        ({"metering": {"path": "elsewhere.jsonl"}}, ["metering"]),
        ({"shutdown_timeout": 3}, ["shutdown_timeout"]),
        ({"timeouts": {"connect": 1, "first_byte": 9, "idle": 9}}, []),
        ({"retry": {"max_attempts": 2, "budget_ratio": 0.5}}, []),
    ],
    ids=["listen", "metering", "shutdown-timeout", "timeouts", "retry"],
)
def test_settings_that_need_a_restart_are_reported(
    run: Callable[..., None], change: dict[str, object], pending: list[str]
) -> None:
    async def scenario(gw: Running) -> None:
        config = gw.configure(**change)
        assert gw.gateway.apply(config, gw.build(config)) == pending
        assert gw.gateway.config is config
        assert gw.gateway.upstream.timeouts == config.timeouts  # type: ignore[attr-defined]
        assert gw.gateway.budget.ratio == config.retry.budget_ratio

    run(scenario)


# -- the CLI: SIGHUP ------------------------------------------------------------------


def _status(url: str, key: str) -> int:
    try:
        return httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_sighup_reloads_the_cli_gateway(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "gateway" / "gateway.yaml"
    doc = yaml.safe_load(example.read_text())
    port = free_port()
    doc["listen"]["port"] = port
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(doc))
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("archipel")), "gateway", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}/v1/models"
    try:
        wait_until(lambda: proc.poll() is not None or _status(url, "sk-demo-public") == 200)
        assert proc.poll() is None, "the gateway exited at start"
        assert _status(url, "sk-new") == 401

        doc["tenants"]["newcomer"] = NEWCOMER
        config.write_text(yaml.safe_dump(doc))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _status(url, "sk-new") == 200)

        config.write_text("tenants: [this is not a mapping")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None  # a broken file is logged, not fatal
        assert _status(url, "sk-new") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    log = err.decode()
    assert "configuration reloaded (generation 2)" in log
    assert "reload failed, still serving generation 2" in log
