"""Answers in the OpenAI error format: :class:`Reply` and the outermost middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web


class Reply(Exception):  # noqa: N818 - control flow, not an error
    """Answer the client with an OpenAI-format error now."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        code: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.headers = headers or {}
        self.param = param
        self.close = close  # the connection cannot be reused (a body left unread)

    def response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        out = web.json_response(body, status=self.status, headers=self.headers)
        if self.close:
            out.force_close()
        return out


@web.middleware
async def last_resort(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Outermost layer: anything unexpected becomes an OpenAI-format error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        code = "not_found" if exc.status == 404 else "http_error"
        return Reply(exc.status, exc.reason, kind, code).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        request.app.logger.exception("gateway: unhandled error")
        return Reply(500, "internal gateway error", "server_error", "internal_error").response()
