"""The floor: a bare aiohttp pass-through with no gateway features at all.

No authentication, routing, policy, balancing, failover, rate limits, metering
or metrics: each POST is forwarded to the next upstream in turn and the answer
is relayed, chunk by chunk for streams. It uses the same libraries as the
gateway (aiohttp server and client, uvloop when installed), so the distance
between it and `archipel gateway` in the same run is what the features cost.

    python bench/gateway/passthrough.py --port 4310 --upstream http://127.0.0.1:9001/v1 \
        --upstream http://127.0.0.1:9002/v1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web


def build(upstreams: list[str]) -> web.Application:
    targets = itertools.cycle(upstreams)
    state: dict[str, aiohttp.ClientSession] = {}

    async def session(app: web.Application) -> AsyncIterator[None]:
        state["s"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )
        yield
        await state["s"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        url = next(targets) + request.path.removeprefix("/v1")
        headers = {"Content-Type": "application/json"}
        async with state["s"].post(url, data=body, headers=headers) as resp:
            if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await out.prepare(request)
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
            return web.Response(
                body=await resp.read(), status=resp.status, content_type="application/json"
            )

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", proxy)
    app.router.add_get("/healthz", health)
    app.cleanup_ctx.append(session)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=4310)
    ap.add_argument("--upstream", action="append", required=True)
    args = ap.parse_args()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        build(args.upstream),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
