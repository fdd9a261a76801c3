"""A fake OpenAI-compatible model server, for trying the gateway and for tests.

Run ``python -m archipel.gateway.fake_upstream --port 9101 --name ovh`` and
point a replica's ``base_url`` at ``http://127.0.0.1:9101/v1``. Answers are
canned (the reply names the fake, so you can see which replica answered).
Tests change :attr:`FakeUpstream.behaviour` to make it fail:

``ok``       answer normally
``error``    answer 500 in OpenAI's error format
``overload`` answer 429 with ``Retry-After: 1``
``close``    close the connection without answering
``hang``     wait (up to ``hang_seconds``, or until :meth:`release`) before answering
``cut``      (streams) send the first chunk, then close the connection
``stall``    (streams) wait like ``hang`` after each chunk
``unhealthy`` answer requests normally but fail health checks (``GET /v1/models``: 503)

``GET /v1/models`` (the gateway's default health check) follows the behaviour
too: it fails with ``error``, ``close``, ``hang`` and ``unhealthy``.

:attr:`FakeUpstream.in_flight` counts the requests being answered; under a
server with ``handler_cancellation`` a request whose connection closes ends at
once, as a model server stops generating for a client that left.

With a key (``--key``, by default the ``ARCHIPEL_SERVICE_KEY`` the control
plane gives the services it runs), every request without ``Authorization:
Bearer <key>`` is answered 401, as a real service that checks its key would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

BEHAVIOURS = ("ok", "error", "overload", "close", "hang", "cut", "stall", "unhealthy")


class FakeUpstream:
    """The fake's state: what it does next, and what it has seen."""

    def __init__(
        self,
        name: str,
        behaviour: str = "ok",
        hang_seconds: float = 30.0,
        key: str | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.refused = 0  # requests answered 401 for a missing or wrong key
        self.behaviour = behaviour
        self.hang_seconds = hang_seconds
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0  # requests being answered now (a closed connection ends one)
        self.checks = 0  # GET /v1/models seen
        self.authorizations: list[str | None] = []
        self._release = asyncio.Event()
        self.app = web.Application(middlewares=[self._count, self._check_key])
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_post("/v1/embeddings", self.embeddings)
        self.app.router.add_get("/v1/models", self.models)

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.key is not None:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.key}".encode()):
                self.refused += 1
                body = {"error": {"message": "invalid service key", "type": "invalid_request"}}
                return web.json_response(body, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def release(self) -> None:
        """End every hanging request now (call before shutting down)."""
        self._release.set()

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _misbehave(self, request: web.Request) -> web.StreamResponse | None:
        self.requests.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization"))
        if self.behaviour == "error":
            body = {"error": {"message": f"{self.name} failed", "type": "server_error"}}
            return web.json_response(body, status=500)
        if self.behaviour == "overload":
            body = {"error": {"message": f"{self.name} overloaded", "type": "rate_limit"}}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        if self.behaviour == "close":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if self.behaviour == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang_seconds)
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        early = await self._misbehave(request)
        if early is not None:
            return early
        doc = self.requests[-1]
        text = f"Hello from {self.name}."
        if doc.get("stream"):
            return await self._stream(request, doc, text)
        return web.json_response(
            {
                "id": f"chatcmpl-{self.name}",
                "object": "chat.completion",
                "created": 0,
                "model": doc.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        )

    async def _stream(
        self, request: web.Request, doc: dict[str, Any], text: str
    ) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        words = text.split(" ")
        for i, word in enumerate(words):
            chunk = {
                "id": f"chatcmpl-{self.name}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": doc.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": word if i == 0 else " " + word},
                        "finish_reason": None,
                    }
                ],
            }
            await out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if self.behaviour == "cut" and request.transport is not None:
                request.transport.close()
                return out
            if self.behaviour == "stall":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), self.hang_seconds)
        if (doc.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": f"chatcmpl-{self.name}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": doc.get("model", ""),
                "choices": [],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": len(words),
                    "total_tokens": 7 + len(words),
                },
            }
            await out.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def completions(self, request: web.Request) -> web.StreamResponse:
        early = await self._misbehave(request)
        if early is not None:
            return early
        return web.json_response(
            {
                "id": f"cmpl-{self.name}",
                "object": "text_completion",
                "created": 0,
                "model": self.requests[-1].get("model", ""),
                "choices": [{"index": 0, "text": f" from {self.name}", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        early = await self._misbehave(request)
        if early is not None:
            return early
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": self.requests[-1].get("model", ""),
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )

    async def models(self, request: web.Request) -> web.StreamResponse:
        self.checks += 1
        if self.behaviour in {"error", "unhealthy"}:
            return web.json_response({"error": {"message": f"{self.name} down"}}, status=503)
        if self.behaviour == "close" and request.transport is not None:
            request.transport.close()
            return web.Response(status=500)
        if self.behaviour == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang_seconds)
        return web.json_response({"object": "list", "data": []})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default="ok")
    parser.add_argument(
        "--key",
        default=os.environ.get("ARCHIPEL_SERVICE_KEY") or None,
        help="answer only requests bearing this key (default: $ARCHIPEL_SERVICE_KEY, if set)",
    )
    args = parser.parse_args(argv)
    fake = FakeUpstream(args.name, args.behaviour, key=args.key)
    web.run_app(fake.app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
