"""What the control plane's HTTP server does before a handler sees a request.

:class:`Guard` is a pure ASGI middleware. It checks the bearer token from the
headers alone, so a request without a valid token is refused with a 401
before one byte of its body is read. It refuses a body larger than
:attr:`Limits.max_body_bytes` with a 413 (at once when ``Content-Length``
says so, else as soon as the streamed bytes pass the limit), and a body that
has not fully arrived :attr:`Limits.body_seconds` after the request's headers
with a 408. Each of these answers closes the connection.

:func:`header_timeout_protocol` is uvicorn's HTTP/1.1 protocol with one more
rule: a connection whose request headers have not fully arrived
:attr:`Limits.header_seconds` after its first byte (or after it opened) is
closed. Idle connections between requests are closed by uvicorn's own
keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import anyio
import h11
from fastapi import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from archipel.controlplane._records import Principal

#: ASGI's three callables, loosely typed (the messages are plain dicts)
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
App = Callable[[Scope, Receive, Send], Any]

UNAUTHENTICATED = "missing, unknown or revoked API token: send `Authorization: Bearer <token>`"


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a request the server accepts, and how long it waits for it."""

    max_body_bytes: int = 1 << 20  # 1 MiB: a workload spec is a few KiB
    body_seconds: float = 10.0
    header_seconds: float = 10.0
    keep_alive_seconds: int = 5
    # a workdir archive (PUT /v1/workdirs/...): the submitter's folder, packed
    max_workdir_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or min(self.body_seconds, self.header_seconds) <= 0:
            raise ValueError("request limits must be positive")


def bearer_token(headers: Collection[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


#: where workdir archives are uploaded (their body limit is ``max_workdir_bytes``)
WORKDIRS_PATH = "/v1/workdirs/"


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; send a smaller one"


class Guard:
    """Authenticate from the headers, then read a bounded body within a deadline.

    ``public`` paths need no token, nor do paths under one of ``open_prefixes``,
    where what is mounted authenticates its callers itself (the console: a
    session cookie); the limits on the body hold there too. Anywhere else the
    principal is put in the request's state (``request.state.principal``) for
    the handlers.
    """

    def __init__(
        self,
        app: App,
        authenticate: Callable[[str], Principal | None],
        public: Collection[str],
        limits: Limits,
        open_prefixes: Collection[str] = (),
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.public = frozenset(public)
        self.limits = limits
        # "/ui" opens "/ui" and "/ui/...", never "/uix"
        self.open_prefixes = tuple(p.rstrip("/") for p in open_prefixes)

    def _needs_token(self, path: str) -> bool:
        if path in self.public:
            return False
        return not any(path == p or path.startswith(p + "/") for p in self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if self._needs_token(scope["path"]):
            token = bearer_token(headers)
            who = self.authenticate(token) if token else None
            if who is None:
                await _answer(send, 401, UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})
                return
            scope.setdefault("state", {})["principal"] = who
        limit = self._limit(scope["path"])
        for name, value in headers:
            if name.lower() == b"content-length":
                if not value.isdigit():
                    await _answer(send, 400, "Content-Length must be a number of bytes", {})
                    return
                if int(value) > limit:
                    await _answer(send, 413, _too_large(limit), {})
                    return
        await self.app(scope, self._bounded(receive, limit), send)

    def _limit(self, path: str) -> int:
        """The largest body taken on ``path``: a workdir archive has its own limit."""
        if path.startswith(WORKDIRS_PATH):
            return self.limits.max_workdir_bytes
        return self.limits.max_body_bytes

    def _bounded(self, receive: Receive, limit: int) -> Receive:
        """``receive``, counting body bytes and timing them until the body is complete."""
        seconds = self.limits.body_seconds
        deadline = time.monotonic() + seconds
        seen = 0
        complete = False

        async def bounded() -> Any:
            nonlocal seen, complete
            if complete:  # later calls wait for a disconnect: no deadline then
                return await receive()
            with anyio.move_on_after(deadline - time.monotonic()):
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    complete = not message.get("more_body", False)
                    if seen > limit:
                        raise HTTPException(413, _too_large(limit), {"Connection": "close"})
                return message
            raise HTTPException(
                408,
                f"the request body did not arrive within {seconds:g} s",
                {"Connection": "close"},
            )

        return bounded


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose headers come too slowly."""

    header_seconds = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_seconds, self._too_slow)
        elif not waiting and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing connections whose headers take over ``seconds``."""
    return type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_seconds": seconds})
