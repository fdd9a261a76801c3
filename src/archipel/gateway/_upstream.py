"""The one seam to model servers: send a request to a replica, get a response.

:class:`Upstream` has one request method, :meth:`Upstream.send`. It returns
when the response headers have arrived, and its response hands out the body
whole (:meth:`UpstreamResponse.read`) or chunk by chunk
(:meth:`UpstreamResponse.chunk`). Foreign exceptions never cross the seam:
each implementation translates them to :class:`UpstreamConnectError` or
:class:`UpstreamTimeoutError`, naming the phase that timed out. The seam
judges no status code: a 500 is a response like any other, and the proxy
decides what to retry.

There are two implementations. :class:`AiohttpUpstream` is the real one.
:class:`FunctionUpstream` is the in-memory fake, backed by a function.
Both pass the contract suite in ``tests/gateway/test_upstream.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from yarl import URL

from archipel.gateway._config import Timeouts
from archipel.gateway._errors import UpstreamConnectError, UpstreamError, UpstreamTimeoutError
from archipel.gateway._route_table import Replica

_JSON = "application/json"
_DROPPED = "connection lost while reading the body"


class UpstreamResponse(Protocol):
    """A response whose headers have arrived; the body is still to be read."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body (the idle timeout bounds the wait)."""
        ...

    async def chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at the end."""
        ...

    def release(self) -> None:
        """Give the connection back (or close it, if the body was not read to the end)."""
        ...


class Upstream(Protocol):
    """Sends requests to replicas. ``start`` and ``close`` run inside the event loop."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def set_timeouts(self, timeouts: Timeouts) -> None:
        """Use these phase timeouts from the next request on (a configuration reload)."""
        ...

    async def send(self, replica: Replica, path: str, body: bytes) -> UpstreamResponse:
        """POST ``body`` to ``replica.base_url + path``, with the replica's own key."""
        ...

    async def check(self, replica: Replica, timeout: float) -> bool:
        """Whether GET ``replica.base_url + replica.health_path`` answers 200 within
        ``timeout`` seconds (the active health check); never raises."""
        ...


class _AiohttpResponse:
    """A response of :class:`AiohttpUpstream`, whose body reads are bounded by the idle timeout.

    The idle timeout bounds each wait for data that has not arrived yet, and only the wait:
    time spent relaying to a slow client does not count. It is one timer per response,
    not one per wait: a stream waits for every token's chunk, and arming and cancelling a
    timer around each wait (``asyncio.timeout``) cost more than the rest of the chunk's
    relay. A wait only notes when it started; the timer, when it fires, checks the wait in
    progress and either ends it (the body's reader gets :class:`UpstreamTimeoutError`) or
    goes back to sleep until that wait's deadline. A response that never waits never arms it.
    """

    __slots__ = ("_idle", "_loop", "_resp", "_timer", "_waiting")

    def __init__(
        self, resp: aiohttp.ClientResponse, idle: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._resp = resp
        self._idle = idle
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: float | None = None  # when the wait in progress began (loop time)

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    async def _within_idle(self, reader: Awaitable[bytes]) -> bytes:
        self._waiting = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._waiting + self._idle, self._on_timer)
        try:
            return await reader
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"while reading the body: {exc}", _DROPPED) from exc
        finally:
            self._waiting = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting is None:
            return  # no wait in progress: the next one arms the timer again
        deadline = self._waiting + self._idle
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        # wakes the wait with the error: the read raises it, and release() closes the
        # connection, whose body was not read to the end
        self._resp.content.set_exception(UpstreamTimeoutError("idle"))

    async def read(self) -> bytes:
        if self._resp.content.is_eof():  # the whole body has arrived: nothing to time
            try:
                return await self._resp.read()
            except aiohttp.ClientError as exc:
                raise UpstreamConnectError(f"while reading the body: {exc}", _DROPPED) from exc
        return await self._within_idle(self._resp.read())

    async def chunk(self) -> bytes:
        content = self._resp.content
        try:
            data = content.read_nowait()  # what has arrived already: no wait to time
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"while reading the body: {exc}", _DROPPED) from exc
        if data or content.at_eof():
            return data
        return await self._within_idle(content.readany())

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._resp.release()


class AiohttpUpstream:
    """The real upstream: one pooled aiohttp client session for every replica."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.set_timeouts(timeouts)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # per (replica, path): the parsed URL and the request headers, built once
        self._targets: dict[tuple[str, str, str | None], tuple[URL, dict[str, str]]] = {}

    def _target(self, replica: Replica, path: str) -> tuple[URL, dict[str, str]]:
        key = (replica.base_url, path, replica.authorization)
        target = self._targets.get(key)
        if target is None:
            headers = {"Content-Type": _JSON}
            if replica.authorization is not None:
                headers["Authorization"] = replica.authorization
            target = self._targets[key] = (URL(replica.base_url + path), headers)
        return target

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_connect=timeouts.connect
        )

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # the session must be created inside the running loop
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=False,
            # one session serves every tenant: never keep an upstream's cookies
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, replica: Replica, path: str, body: bytes) -> UpstreamResponse:
        if self._session is None or self._loop is None:
            raise RuntimeError("AiohttpUpstream.send before start()")
        url, headers = self._target(replica, path)
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                resp = await self._session.post(
                    url, data=body, headers=headers, timeout=self._client_timeout
                )
        except aiohttp.ConnectionTimeoutError as exc:  # before the generic TimeoutError
            raise UpstreamTimeoutError("connect") from exc
        except TimeoutError as exc:
            raise UpstreamTimeoutError("first byte") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"{replica.id}: {exc}") from exc
        return _AiohttpResponse(resp, self.timeouts.idle, self._loop)

    async def check(self, replica: Replica, timeout: float) -> bool:
        if self._session is None:
            raise RuntimeError("AiohttpUpstream.check before start()")
        url, headers = self._target(replica, replica.health_path)
        try:
            async with asyncio.timeout(timeout):
                async with self._session.get(url, headers=headers) as resp:
                    await resp.read()  # to the end, so the connection can be reused
                    return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


@dataclass
class FakeReply:
    """What a :class:`FunctionUpstream` handler answers.

    ``chunks`` is the body, piece by piece. An exception among the chunks is
    raised when the reader reaches it, to fake a failure in the middle of a body.
    """

    status: int = 200
    chunks: Sequence[bytes | UpstreamError] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": _JSON})


class _FakeResponse:
    def __init__(self, reply: FakeReply) -> None:
        self._reply = reply
        self._next = 0

    @property
    def status(self) -> int:
        return self._reply.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._reply.headers

    async def chunk(self) -> bytes:
        if self._next >= len(self._reply.chunks):
            return b""
        item = self._reply.chunks[self._next]
        self._next += 1
        if isinstance(item, UpstreamError):
            raise item
        return item

    async def read(self) -> bytes:
        parts = []
        while piece := await self.chunk():
            parts.append(piece)
        return b"".join(parts)

    def release(self) -> None:
        return None


Handler = Callable[[Replica, str, bytes], Awaitable[FakeReply]]
Checker = Callable[[Replica], Awaitable[bool]]


class FunctionUpstream:
    """The in-memory fake: ``handler(replica, path, body)`` answers each request.

    The handler may raise :class:`UpstreamConnectError` or
    :class:`UpstreamTimeoutError` to fake a failure before the headers.
    ``checker(replica)`` answers active health checks (default: healthy);
    a checker slower than the check's timeout fails the check.
    """

    def __init__(self, handler: Handler, checker: Checker | None = None) -> None:
        self.handler = handler
        self.checker = checker
        self.sent: list[tuple[str, str, bytes]] = []  # (replica id, path, body)
        self.timeouts: Timeouts | None = None

    async def start(self) -> None:
        return None

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts

    async def close(self) -> None:
        return None

    async def send(self, replica: Replica, path: str, body: bytes) -> UpstreamResponse:
        self.sent.append((replica.id, path, body))
        return _FakeResponse(await self.handler(replica, path, body))

    async def check(self, replica: Replica, timeout: float) -> bool:
        if self.checker is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                return await self.checker(replica)
        except (UpstreamError, TimeoutError):
            return False
