"""What the gateway accepts from clients: bodies, their size and pace, and clients that leave.

Against a started gateway and fake upstreams on loopback; the misbehaving
clients write raw HTTP/1.1 on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

from archipel.core import CatalogSnapshot
from archipel.policy import Policy

from .harness import Running, Site, eventually, http_request, running

Scenario = Callable[[Running], Awaitable[None]]

#: one replica only, so that every request lands on the fake the test controls
ONE = {"ovh": Site("ovhcloud", "gra", "FR", max_concurrency=32)}


@pytest.fixture
def run(snapshot: CatalogSnapshot, policy: Policy) -> Callable[..., None]:
    def go(scenario: Scenario, **overrides: object) -> None:
        async def main() -> None:
            async with running(snapshot, policy, ONE, **overrides) as gw:
                await scenario(gw)

        asyncio.run(main())

    return go


async def _connect(gw: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(gw.url)
    assert address.hostname is not None and address.port is not None
    return await asyncio.open_connection(address.hostname, address.port)


@asynccontextmanager
async def _socket(gw: Running) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw connection to the gateway, closed at the end whatever happens."""
    reader, writer = await _connect(gw)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _closed(reader: asyncio.StreamReader, seconds: float = 10.0) -> bytes:
    """Everything the gateway sends until it closes the connection (bounded wait)."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def _response(reader: asyncio.StreamReader, seconds: float = 10.0) -> tuple[int, bytes]:
    """The status and body of the gateway's next answer (bounded wait)."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(fields["content-length"]))
    return int(lines[0].split()[1]), body


def _slots(gw: Running) -> int:
    return sum(state.outstanding for state in gw.gateway.states)


def test_clients_that_leave_before_the_first_byte_free_their_slots_at_once(
    run: Callable[..., None],
) -> None:
    """32 clients fill the replica's 32 slots, then disconnect while it stalls.

    The upstream requests are closed and the slots freed long before
    ``first_byte`` (60 s) would have ended them; the next client is served.
    """

    async def scenario(gw: Running) -> None:
        fake = gw.fakes["ovh"]
        fake.behaviour = "hang"
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
        clients = [await _connect(gw) for _ in range(32)]
        for _, writer in clients:
            writer.write(http_request(body.encode()))
            await writer.drain()
        await eventually(lambda: _slots(gw) == 32 and fake.in_flight == 32)

        for _, writer in clients:
            writer.close()
        # the expected time is a few milliseconds; the deadline is generous for a busy
        # machine and far below first_byte, which held the slots before
        await eventually(lambda: _slots(gw) == 0 and fake.in_flight == 0, seconds=2.0)

        fake.behaviour = "ok"
        assert (await gw.chat("lab")).status == 200
        abandoned = [r for r in gw.meter.records if r.status == 499]
        assert len(abandoned) == 32
        assert all(r.input_tokens == r.output_tokens == 0 and r.cost == 0 for r in abandoned)

    run(scenario, timeouts={"connect": 1, "first_byte": 60, "idle": 30})


TOO_DEEP = b"[" * 100_000 + b"]" * 100_000
LIMIT = 256 * 1024  # max_body_bytes in these tests: TOO_DEEP fits
CHAT = {"model": "llama", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        pytest.param(
            b'{"model": "llama", "messages": [', 400, "invalid_json", None, id="truncated"
        ),
        pytest.param(TOO_DEEP, 400, "invalid_json", None, id="nested 100,000 deep"),
        pytest.param(
            json.dumps({"model": "llama", "messages": [[[[[[[[]]]]]]]]}),
            400,
            "invalid_type",
            "messages[0]",
            id="messages nested deep",
        ),
        pytest.param(b"[]", 400, "invalid_request_body", None, id="not an object"),
        pytest.param(
            json.dumps({**CHAT, "stream": "false"}), 400, "invalid_type", "stream", id="stream text"
        ),
        pytest.param(
            json.dumps({"model": "llama"}),
            400,
            "missing_required_parameter",
            "messages",
            id="no messages",
        ),
        pytest.param(
            json.dumps({**CHAT, "pad": "x" * LIMIT}),
            413,
            "request_too_large",
            None,
            id="over max_body_bytes",
        ),
    ],
)
def test_bodies_the_gateway_cannot_read_get_a_4xx_and_reach_no_replica(
    run: Callable[..., None], body: bytes | str, status: int, code: str, param: str | None
) -> None:
    async def scenario(gw: Running) -> None:
        resp = await gw.http.post(
            f"{gw.url}/v1/chat/completions",
            data=body,
            headers={"Authorization": "Bearer sk-lab", "Content-Type": "application/json"},
        )
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["param"]) == (status, code, param)
        assert error["type"] == "invalid_request_error"
        assert gw.fakes["ovh"].requests == []
        assert (await gw.chat("lab")).status == 200  # the gateway serves the next request

    run(scenario, requests={"max_body_bytes": LIMIT})


def test_a_chunked_body_over_the_limit_gets_413(run: Callable[..., None]) -> None:
    """Without a Content-Length the limit holds while the body is read."""

    async def scenario(gw: Running) -> None:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            "Authorization: Bearer sk-lab\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (1024, b"x" * 1024)
        async with _socket(gw) as (reader, writer):
            writer.write(head.encode() + chunk * (LIMIT // 1024 + 1))
            status, body = await _response(reader)
        assert (status, json.loads(body)["error"]["code"]) == (413, "request_too_large")
        assert gw.fakes["ovh"].requests == []

    run(scenario, requests={"max_body_bytes": 2048})


def test_a_body_that_stops_arriving_gets_408_after_body_timeout(
    run: Callable[..., None],
) -> None:
    async def scenario(gw: Running) -> None:
        whole = http_request(json.dumps(CHAT).encode())
        async with _socket(gw) as (reader, writer):
            writer.write(whole[:-10])  # the headers and all but the last ten bytes of the body
            status, body = await _response(reader)
        error = json.loads(body)["error"]
        assert (status, error["code"]) == (408, "request_timeout")
        assert "requests.body_timeout" in error["message"]
        assert gw.fakes["ovh"].requests == []

    run(scenario, requests={"body_timeout": 0.2})


def test_a_connection_that_never_finishes_its_headers_is_closed_after_header_timeout(
    run: Callable[..., None],
) -> None:
    async def scenario(gw: Running) -> None:
        async with _socket(gw) as (reader, writer):
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n")
            assert await _closed(reader) == b""  # closed, with nothing to say

    run(scenario, requests={"header_timeout": 0.2})


def test_a_client_that_leaves_mid_stream_frees_the_slot_and_is_billed_for_what_it_got(
    run: Callable[..., None],
) -> None:
    async def scenario(gw: Running) -> None:
        gw.fakes["ovh"].behaviour = "stall"  # one chunk, then silence
        body = json.dumps({**CHAT, "stream": True}).encode()
        async with _socket(gw) as (reader, writer):
            writer.write(http_request(body))
            async with asyncio.timeout(10):
                await reader.readuntil(b"data: ")  # the first event has arrived
        await eventually(lambda: _slots(gw) == 0 and gw.fakes["ovh"].in_flight == 0, seconds=2.0)
        (record,) = gw.meter.records
        assert (record.status, record.replica, record.tokens_counted) == (200, "llama/ovh", True)
        assert record.output_tokens == 1 and record.input_tokens == 1  # "hi": one token

    run(scenario, timeouts={"connect": 1, "first_byte": 60, "idle": 60})


def test_a_body_too_deep_to_forward_renamed_is_a_400(
    snapshot: CatalogSnapshot, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that renames the model needs the body serialized again; orjson refuses
    more than 254 levels (``TypeError: Recursion limit reached``): the client gets a 400."""
    from archipel.gateway import _json

    def refuse(obj: object) -> bytes:
        raise TypeError("Recursion limit reached")

    renamed = {"ovh": Site("ovhcloud", "gra", "FR", upstream_model="meta-llama/Llama-3.1-8B")}

    async def main() -> None:
        async with running(snapshot, policy, renamed) as gw:
            monkeypatch.setattr(_json, "dumps", refuse)
            resp = await gw.chat("lab")
            error = (await resp.json())["error"]
            assert (resp.status, error["code"]) == (400, "invalid_request_body")
            assert gw.fakes["ovh"].requests == [] and _slots(gw) == 0

    asyncio.run(main())
