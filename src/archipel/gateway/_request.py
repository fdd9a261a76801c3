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
OpenAI's error format (``type``, ``param``, ``code``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
