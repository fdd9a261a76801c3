"""A gateway and fake upstreams on loopback ephemeral ports, torn down cleanly; the test Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis
from aiohttp import web
from redis.backoff import NoBackoff
from redis.retry import Retry

from archipel.core import CatalogSnapshot
from archipel.gateway import (
    GatewayConfig,
    MemoryMeter,
    Meter,
    RouteTable,
    Upstream,
    build_route_table,
    hash_key,
    parse_gateway_config,
)
from archipel.gateway._server import Gateway, server_settings
from archipel.gateway.fake_upstream import FakeUpstream
from archipel.policy import Policy

#: tenant -> (API key, data class)
TENANTS = {"clinic": ("sk-clinic", "health"), "lab": ("sk-lab", "public")}


@dataclass
class Site:
    """Where a fake replica pretends to run."""

    provider: str
    region: str
    country: str
    pool: str = "primary"
    weight: float = 1.0
    max_concurrency: int = 64
    upstream_model: str | None = None


#: the default cast: one EU replica with no CLOUD Act exposure, one US hyperscaler
SITES = {
    "ovh": Site("ovhcloud", "gra", "FR"),
    "aws": Site("aws", "us-east-1", "US"),
}


def gateway_doc(
    ports: Mapping[str, int], sites: Mapping[str, Site], **overrides: Any
) -> dict[str, Any]:
    replicas = [
        {
            "name": name,
            "provider": s.provider,
            "region": s.region,
            "country": s.country,
            "base_url": f"http://127.0.0.1:{ports[name]}/v1",
            "key_env": f"KEY_{name.upper()}",
            "weight": s.weight,
            "max_concurrency": s.max_concurrency,
            "pool": s.pool,
            "upstream_model": s.upstream_model,
            "price": {"currency": "EUR", "input_per_million": "0.20", "output_per_million": "0.60"},
        }
        for name, s in sites.items()
    ]
    doc: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "timeouts": {"connect": 1, "first_byte": 0.5, "idle": 0.5},
        "retry": {"max_attempts": 3},
        "breaker": {"failure_threshold": 3, "cooldown": 30},
        "tenants": {
            t: {"key_sha256": [hash_key(key)], "data_class": cls}
            for t, (key, cls) in TENANTS.items()
        },
        "models": {"llama": {"replicas": replicas}},
    }
    doc.update(overrides)
    return doc


@dataclass
class Running:
    url: str
    gateway: Gateway
    fakes: dict[str, FakeUpstream]
    meter: MemoryMeter
    http: aiohttp.ClientSession
    ports: dict[str, int]

    def configure(self, sites: Mapping[str, Site] = SITES, **overrides: Any) -> GatewayConfig:
        """Another configuration over the same fakes (for reloads)."""
        return parse_gateway_config(gateway_doc(self.ports, sites, **overrides))

    def build(self, config: GatewayConfig) -> RouteTable:
        """The route table the gateway's own builder makes of ``config``."""
        assert self.gateway.builder is not None
        return self.gateway.builder(config)

    async def chat(self, tenant: str = "lab", **body: Any) -> aiohttp.ClientResponse:
        payload = {"model": "llama", "messages": [{"role": "user", "content": "hi"}], **body}
        resp = await self.http.post(
            f"{self.url}/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {TENANTS[tenant][0]}"},
        )
        await resp.read()
        return resp


async def _start(app: web.Application, **settings: Any) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, **settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


@asynccontextmanager
async def running(
    snapshot: CatalogSnapshot,
    policy: Policy,
    sites: Mapping[str, Site] = SITES,
    meter: Meter | None = None,
    upstream: Upstream | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    fakes = {name: FakeUpstream(name) for name in sites}
    runners: list[web.AppRunner] = []
    try:
        ports = {}
        for name, fake in fakes.items():
            # a fake notices when the gateway closes a request, as a model server does
            runner, ports[name] = await _start(fake.app, handler_cancellation=True)
            runners.append(runner)
        keys = {f"llama/{name}": f"upstream-{name}" for name in sites}

        def builder(cfg: GatewayConfig) -> RouteTable:
            return build_route_table(cfg, policy, snapshot, keys)

        config = parse_gateway_config(gateway_doc(ports, sites, **overrides))
        memory = MemoryMeter()
        gateway = Gateway(config, builder(config), meter or memory, upstream, builder=builder)
        runner, port = await _start(gateway.app, **server_settings(config))
        runners.append(runner)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            yield Running(url, gateway, fakes, memory, http, ports)
    finally:
        for fake in fakes.values():
            fake.release()
        for runner in reversed(runners):
            await runner.cleanup()


async def eventually(ready: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``ready`` on the running loop until it holds; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {seconds} s")
        await asyncio.sleep(0.005)


def http_request(body: bytes, path: str = "/v1/chat/completions", key: str = "sk-lab") -> bytes:
    """A complete HTTP/1.1 POST, as bytes on the wire (for clients that misbehave)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- processes on loopback ------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on now (for a process that binds it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(ready: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``ready`` until it holds; fail after ``seconds`` (a deadline, not a sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"still not ready after {seconds} s")


# -- the test Redis (shared rate limits) -------------------------------------------

REDIS_URL = os.environ.get("ARCHIPEL_TEST_REDIS", "redis://127.0.0.1:6379")


def redis_sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


def unique_prefix() -> str:
    return f"archipel-test:{uuid.uuid4().hex[:12]}"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
