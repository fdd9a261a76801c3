"""What the gateway reads of a request body, checked before the request is routed.

The gateway forwards a body as it received it, so it checks only the fields
it reads itself:

- ``model`` (a string): the route;
- ``stream`` (a boolean, when present): whether the answer is relayed as a
  stream. ``"stream": "false"`` is a client error, not a stream;
- the endpoint's prompt field, which the token estimate reads when the
  upstream reports no usage: ``messages`` (chat: a list of message objects,
  each ``content`` a string, a list of parts, or null), ``prompt``
  (completions, optional) or ``input`` (embeddings): a string or a list.

Everything else (``max_tokens``, ``temperature``, tools...) is the replica's
to judge: the gateway does not read it. A check looks at the top level and at
most one level down (the messages), so it costs a few lookups per request.
A failed check is a :class:`Problem`, which the server answers with 400 in
OpenAI's error format (``type``, ``param``, ``code``). :func:`read_body` reads
the body within ``requests.max_body_bytes`` and ``requests.body_timeout``,
parses it and checks it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from archipel.gateway import _json
from archipel.gateway._config import Requests
from archipel.gateway._reply import Reply


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a body is refused: OpenAI's ``message``, ``param`` and ``code``."""

    message: str
    param: str | None
    code: str


#: the prompt field of each proxied endpoint (path under the replica's base URL),
#: and whether the endpoint requires it
PROMPT_FIELDS = {
    "/chat/completions": ("messages", True),
    "/completions": ("prompt", False),
    "/embeddings": ("input", True),
}

_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _invalid(param: str, expected: str, value: Any) -> Problem:
    return Problem(
        f"Invalid type for `{param}`: expected {expected}, got {_kind(value)}.",
        param,
        "invalid_type",
    )


def check_body(suffix: str, doc: Any) -> Problem | None:
    """The first problem of a parsed body for the endpoint ``suffix``, or None."""
    if not isinstance(doc, dict):
        return Problem(
            f"The body must be a JSON object, got {_kind(doc)}.", None, "invalid_request_body"
        )
    model = doc.get("model")
    if model is None:
        return Problem(
            "Missing required parameter: `model`.", "model", "missing_required_parameter"
        )
    if not isinstance(model, str):
        return _invalid("model", "a string", model)
    stream = doc.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return _invalid("stream", "a boolean", stream)
    field, required = PROMPT_FIELDS[suffix]
    value = doc.get(field)
    if value is None:
        if required:
            return Problem(
                f"Missing required parameter: `{field}`.", field, "missing_required_parameter"
            )
        return None
    if field == "messages":
        return _check_messages(value)
    if not isinstance(value, (str, list)):
        return _invalid(field, "a string or an array", value)
    return None


_CONTENT = (str, list, type(None))


def _check_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list):
        return _invalid("messages", "an array of message objects", messages)
    for message in messages:  # the common case, without building an index per message
        if type(message) is not dict or not isinstance(message.get("content"), _CONTENT):
            break
    else:
        return None
    for i, message in enumerate(messages):  # there is a problem: say where
        if not isinstance(message, dict):
            return _invalid(f"messages[{i}]", "an object", message)
        content = message.get("content")
        if not isinstance(content, _CONTENT):
            return _invalid(f"messages[{i}].content", "a string or an array of parts", content)
    return None


async def _read(request: web.Request, requests: Requests) -> bytes:
    """The body, within ``requests.max_body_bytes`` and ``requests.body_timeout``."""
    limit = requests.max_body_bytes
    length = request.content_length
    try:
        if length is not None and length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
        if request.content.is_eof():  # it arrived with the headers: nothing to time
            return await request.read()
        async with asyncio.timeout(requests.body_timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        message = f"The request body is larger than {limit} bytes (requests.max_body_bytes)."
        raise Reply(
            413, message, "invalid_request_error", "request_too_large", close=True
        ) from None
    except TimeoutError:
        after = requests.body_timeout
        message = f"The request body did not arrive within {after:g} s (requests.body_timeout)."
        raise Reply(408, message, "invalid_request_error", "request_timeout", close=True) from None


async def read_body(
    request: web.Request, suffix: str, requests: Requests
) -> tuple[bytes, dict[str, Any]]:
    """The body as received and as parsed, or a :class:`~archipel.gateway._reply.Reply`:
    413, 408 or 400 (the fields the gateway reads, see :func:`check_body`)."""
    body = await _read(request, requests)
    try:
        doc = _json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise Reply(
            400,
            f"We could not parse the JSON body of your request: {detail}",
            "invalid_request_error",
            "invalid_json",
        ) from None
    problem = check_body(suffix, doc)
    if problem is not None:
        raise Reply(
            400, problem.message, "invalid_request_error", problem.code, param=problem.param
        )
    return body, doc
