"""Contract suite of the upstream seam: the real client and the fake behave alike.

Every implementation of :class:`archipel.gateway._upstream.Upstream` must
pass these tests. Each scenario is named by the replica it is sent to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from aiohttp import web

from archipel.gateway import (
    AiohttpUpstream,
    FakeReply,
    FunctionUpstream,
    Pool,
    Replica,
    Upstream,
    UpstreamConnectError,
    UpstreamTimeoutError,
)
from archipel.gateway._config import Timeouts

from .harness import free_port

# generous enough for a loaded CI machine; the hanging scenarios wait up to 5 s
TIMEOUTS = Timeouts(connect=2, first_byte=1.0, idle=1.0)
STREAM = [b"data: 1\n\n", b"data: 2\n\n"]


def replica(name: str, base_url: str) -> Replica:
    return Replica(
        index=0, id=f"m/{name}", model="m", name=name, provider="p", region="r", country="FR",
        base_url=base_url, upstream_model=None, authorization="Bearer k", weight=1.0,
        max_concurrency=1, pool=Pool.PRIMARY, currency="EUR", input_price=Decimal(0),
        output_price=Decimal(0), cost_factor=1.0,
    )  # fmt: skip


@dataclass
class Bench:
    upstream: Upstream
    at: Callable[[str], Replica]  # scenario name -> the replica that plays it
    authorizations: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def real() -> AsyncIterator[Bench]:
    release = asyncio.Event()
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        scenario = request.match_info["scenario"]
        if scenario == "first_byte":
            await asyncio.wait_for(release.wait(), 5)
        if scenario == "status500":
            return web.json_response({"error": {}}, status=500)
        if scenario in {"stream", "idle"}:
            out = web.StreamResponse()
            await out.prepare(request)
            await out.write(STREAM[0])
            if scenario == "idle":
                await asyncio.wait_for(release.wait(), 5)
            await out.write(STREAM[1])
            return out
        return web.json_response({"ok": True})

    async def health(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        scenario = request.match_info["scenario"]
        if scenario == "first_byte":
            await release.wait()  # until the bench is torn down
        if scenario == "status500":
            return web.json_response({"error": {}}, status=500)
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_post("/{scenario}/chat/completions", handle)
    app.router.add_get("/{scenario}/models", health)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    dead = free_port()
    upstream = AiohttpUpstream(TIMEOUTS)
    await upstream.start()

    def at(name: str) -> Replica:
        if name == "refused":
            return replica(name, f"http://127.0.0.1:{dead}/refused")
        return replica(name, f"http://127.0.0.1:{port}/{name}")

    try:
        yield Bench(upstream, at, seen)
    finally:
        release.set()
        await upstream.close()
        await runner.cleanup()


@asynccontextmanager
async def fake() -> AsyncIterator[Bench]:
    seen: list[str | None] = []

    async def handler(r: Replica, path: str, body: bytes) -> FakeReply:
        seen.append(r.authorization)
        if r.name == "refused":
            raise UpstreamConnectError("connection refused")
        if r.name == "first_byte":
            raise UpstreamTimeoutError("first byte")
        if r.name == "status500":
            return FakeReply(500, [b'{"error": {}}'])
        if r.name == "stream":
            return FakeReply(200, STREAM)
        if r.name == "idle":
            return FakeReply(200, [STREAM[0], UpstreamTimeoutError("idle")])
        return FakeReply(200, [b'{"ok": true}'])

    async def checker(r: Replica) -> bool:
        seen.append(r.authorization)
        if r.name == "refused":
            raise UpstreamConnectError("connection refused")
        if r.name == "first_byte":
            await asyncio.Event().wait()  # forever
        return r.name != "status500"

    upstream = FunctionUpstream(handler, checker)
    yield Bench(upstream, lambda name: replica(name, "fake://"), seen)


IMPLEMENTATIONS = [pytest.param(real, id="aiohttp"), pytest.param(fake, id="function")]
Make = Callable[[], AbstractAsyncContextManager[Bench]]


def check(make: Make, body: Callable[[Bench], object]) -> None:
    async def main() -> None:
        async with make() as bench:
            await body(bench)  # type: ignore[misc]

    asyncio.run(main())


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_json_answer_is_read_whole_with_the_replicas_key(make: Make) -> None:
    async def body(b: Bench) -> None:
        resp = await b.upstream.send(b.at("json"), "/chat/completions", b"{}")
        assert resp.status == 200
        assert b'"ok"' in await resp.read()
        resp.release()
        assert b.authorizations == ["Bearer k"]

    check(make, body)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_stream_is_read_chunk_by_chunk_until_empty(make: Make) -> None:
    async def body(b: Bench) -> None:
        resp = await b.upstream.send(b.at("stream"), "/chat/completions", b"{}")
        got = b""
        while chunk := await resp.chunk():
            got += chunk
        resp.release()
        assert got == b"".join(STREAM)

    check(make, body)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_server_error_is_a_response_not_an_exception(make: Make) -> None:
    async def body(b: Bench) -> None:
        resp = await b.upstream.send(b.at("status500"), "/chat/completions", b"{}")
        assert resp.status == 500
        await resp.read()
        resp.release()

    check(make, body)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("scenario", "error", "phase"),
    [
        pytest.param("refused", UpstreamConnectError, None, id="refused"),
        pytest.param("first_byte", UpstreamTimeoutError, "first byte", id="first byte"),
    ],
)
def test_failures_before_the_headers_are_translated(
    make: Make, scenario: str, error: type[Exception], phase: str | None
) -> None:
    async def body(b: Bench) -> None:
        with pytest.raises(error) as info:
            await b.upstream.send(b.at(scenario), "/chat/completions", b"{}")
        if phase is not None:
            assert isinstance(info.value, UpstreamTimeoutError)
            assert info.value.phase == phase
            assert isinstance(info.value, TimeoutError)  # also the built-in

    check(make, body)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_a_body_that_stalls_times_out_in_the_idle_phase(make: Make) -> None:
    async def body(b: Bench) -> None:
        resp = await b.upstream.send(b.at("idle"), "/chat/completions", b"{}")
        assert await resp.chunk() == STREAM[0]
        with pytest.raises(UpstreamTimeoutError) as info:
            await resp.chunk()
        assert info.value.phase == "idle"
        resp.release()

    check(make, body)


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("scenario", "healthy"),
    [
        pytest.param("json", True, id="200"),
        pytest.param("status500", False, id="500"),
        pytest.param("refused", False, id="refused"),
        pytest.param("first_byte", False, id="hangs past the timeout"),
    ],
)
def test_a_health_check_is_a_yes_or_no_within_its_timeout(
    make: Make, scenario: str, healthy: bool
) -> None:
    async def body(b: Bench) -> None:
        # the server may never answer: only the check's own timeout ends the wait
        verdict = await asyncio.wait_for(b.upstream.check(b.at(scenario), timeout=0.3), 30)
        assert verdict is healthy
        if scenario != "refused":
            assert b.authorizations == ["Bearer k"]  # checked with the replica's own key

    check(make, body)


# -- the real client's idle timeout: each wait for data, not the whole body ---------------

IDLE = 0.3  # seconds; the gaps below are fractions of it


@asynccontextmanager
async def dripping(gaps: list[float], then_stall: bool) -> AsyncIterator[Replica]:
    """A replica that streams one chunk, then one more after each of ``gaps`` seconds, then
    ends the stream (or stalls until torn down, with ``then_stall``)."""
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse()
        await out.prepare(request)
        await out.write(b"data: 0\n\n")
        for i, gap in enumerate(gaps, 1):
            await asyncio.sleep(gap)
            await out.write(f"data: {i}\n\n".encode())
        if then_stall:
            await release.wait()
        return out

    app = web.Application()
    app.router.add_post("/drip/chat/completions", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield replica("drip", f"http://127.0.0.1:{runner.addresses[0][1]}/drip")
    finally:
        release.set()
        await runner.cleanup()


def test_a_stream_slower_in_total_than_the_idle_timeout_is_not_cut() -> None:
    async def main() -> None:
        # six gaps of half the timeout: three timeouts' worth in all, none idle for long
        async with dripping([IDLE / 2] * 6, then_stall=False) as r:
            upstream = AiohttpUpstream(Timeouts(connect=2, first_byte=2, idle=IDLE))
            await upstream.start()
            try:
                resp = await upstream.send(r, "/chat/completions", b"{}")
                got = b""
                while chunk := await resp.chunk():
                    got += chunk
                resp.release()
            finally:
                await upstream.close()
        assert got == b"".join(f"data: {i}\n\n".encode() for i in range(7))

    asyncio.run(main())


def test_time_spent_away_from_the_stream_is_not_idle_time_but_a_stall_is() -> None:
    async def main() -> None:
        async with dripping([IDLE / 6, IDLE / 6], then_stall=True) as r:
            upstream = AiohttpUpstream(Timeouts(connect=2, first_byte=2, idle=IDLE))
            await upstream.start()
            try:
                resp = await upstream.send(r, "/chat/completions", b"{}")
                assert await resp.chunk() == b"data: 0\n\n"
                assert await resp.chunk() == b"data: 1\n\n"  # waited for: the timer runs
                # the relay is busy elsewhere (a slow client) for longer than the timeout,
                # while the next chunk arrives: that is no silence of the replica's
                await asyncio.sleep(3 * IDLE)
                assert await resp.chunk() == b"data: 2\n\n"
                # then the replica goes silent while the relay waits: that is
                with pytest.raises(UpstreamTimeoutError) as info:
                    await asyncio.wait_for(resp.chunk(), 30)
                assert info.value.phase == "idle"
                resp.release()
            finally:
                await upstream.close()

    asyncio.run(main())
