"""Before a handler sees a request: the token from the headers alone, then a bounded body
that must arrive in time; and a connection whose headers never finish is closed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from archipel.controlplane import Reconciler, Store
from archipel.controlplane._api import create_app
from archipel.controlplane._http import Limits, header_timeout_protocol

Message = dict[str, Any]


def call(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    receive: Callable[[], Any],
) -> tuple[int, dict[bytes, bytes], Any]:
    """One request straight through the ASGI app: its status, headers and JSON body."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8470),
    }
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), json.loads(body)


async def never_read() -> Message:
    raise AssertionError("the body was read")


def chunks(*parts: bytes) -> Callable[[], Any]:
    queue = list(parts)

    async def receive() -> Message:
        part = queue.pop(0)
        return {"type": "http.request", "body": part, "more_body": bool(queue)}

    return receive


async def stalls() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("not reached")


@pytest.fixture
def limited(store: Store, reconciler: Reconciler) -> Callable[..., Any]:
    return lambda **limits: create_app(store, reconciler, limits=Limits(**limits))


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/v1/runs", {}),
        ("POST", "/v1/runs", {"Authorization": "Bearer arch_nope_nope"}),
        ("POST", "/v1/runs", {"Authorization": "Basic abc"}),
        ("POST", "/v1/runs/r-1/cancel", {"Content-Length": "200000000"}),
        ("POST", "/v1/elsewhere", {"Transfer-Encoding": "chunked"}),
    ],
    ids=["no token", "unknown token", "wrong scheme", "cancel, huge body", "unknown path"],
)
def test_a_request_without_a_valid_token_is_refused_before_its_body_is_read(
    limited: Callable[..., Any], method: str, path: str, headers: dict[str, str]
) -> None:
    status, sent_headers, body = call(limited(), method, path, headers, never_read)
    assert status == 401
    assert "token" in body["detail"]
    assert sent_headers[b"www-authenticate"] == b"Bearer"
    assert sent_headers[b"connection"] == b"close"


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    limited: Callable[..., Any], store: Store
) -> None:
    headers = {
        "Authorization": f"Bearer {store.create_token('acme', 'submitter')}",
        "Content-Length": "1025",
        "Content-Type": "application/json",
    }
    status, sent_headers, body = call(
        limited(max_body_bytes=1024), "POST", "/v1/runs", headers, never_read
    )
    assert status == 413 and "1024 bytes" in body["detail"]
    assert sent_headers[b"connection"] == b"close"


def test_a_streamed_body_over_the_limit_is_refused_once_it_passes_it(
    limited: Callable[..., Any], store: Store
) -> None:
    headers = {
        "Authorization": f"Bearer {store.create_token('acme', 'submitter')}",
        "Content-Type": "application/json",
    }
    receive = chunks(b"{" + b" " * 600, b" " * 600, b"}")
    status, _, body = call(limited(max_body_bytes=1024), "POST", "/v1/runs", headers, receive)
    assert status == 413 and "1024 bytes" in body["detail"]


def test_a_body_that_does_not_arrive_in_time_is_a_408(
    limited: Callable[..., Any], store: Store
) -> None:
    headers = {
        "Authorization": f"Bearer {store.create_token('acme', 'submitter')}",
        "Content-Type": "application/json",
    }
    status, sent_headers, body = call(
        limited(body_seconds=0.01), "POST", "/v1/runs", headers, stalls
    )
    assert status == 408 and "did not arrive" in body["detail"]
    assert sent_headers[b"connection"] == b"close"


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
def test_the_health_check_and_the_api_description_need_no_token(
    limited: Callable[..., Any], path: str
) -> None:
    status, _, _ = call(limited(), "GET", path, {}, chunks(b""))
    assert status == 200


@pytest.mark.parametrize(
    "limits",
    [{"max_body_bytes": 0}, {"body_seconds": 0}, {"header_seconds": -1}],
    ids=["no body", "no time for a body", "negative header time"],
)
def test_limits_are_positive(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        Limits(**limits)  # type: ignore[arg-type]


@pytest.fixture
def slow_header_server() -> Iterator[int]:
    """A uvicorn server on 127.0.0.1 that waits 0.2 s for a request's headers."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=header_timeout_protocol(0.2), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):  # at most 10 s
        if server.started:
            break
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize(
    "sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half the headers"]
)
def test_a_connection_whose_headers_never_finish_is_closed(
    slow_header_server: int, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", slow_header_server), timeout=10) as client:
        client.sendall(sent)
        assert client.recv(1024) == b""  # closed by the server, long before the 10 s timeout


def test_a_connection_that_sends_its_headers_in_time_is_answered(slow_header_server: int) -> None:
    with socket.create_connection(("127.0.0.1", slow_header_server), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(1024).startswith(b"HTTP/1.1 204")
