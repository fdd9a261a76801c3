"""Token counts for metering: the upstream's ``usage`` block, or an estimate.

When the upstream reports no usage (a streaming request without
``stream_options.include_usage``, or a server that never sends it) tokens are
*estimated*: about four characters of text per input token and one token per
streamed content event. Records say which (``tokens_counted``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from archipel.gateway import _json


def usage_of(doc: Any) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` from a response document, if it has them."""
    if not isinstance(doc, dict):
        return None
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return prompt, completion


#: how deep the estimate looks for text: messages -> message -> parts -> part -> text is 5
_DEPTH = 6


def _text(value: Any, depth: int = _DEPTH) -> Iterable[str]:
    """The strings of a prompt, message or answer; nothing nested deeper than ``depth``."""
    if isinstance(value, str):
        yield value
    elif depth <= 0:
        return
    elif isinstance(value, list):
        for item in value:
            yield from _text(item, depth - 1)
    elif isinstance(value, dict):
        for key in ("content", "text", "input", "prompt"):
            if key in value:
                yield from _text(value[key], depth - 1)


def estimate_input_tokens(request: dict[str, Any]) -> int:
    """Roughly four characters per token over the prompt, messages or input."""
    chars = 0
    for key in ("messages", "prompt", "input"):
        if key in request:
            chars += sum(len(t) for t in _text(request[key]))
    return max(1, (chars + 3) // 4)


def estimate_output_tokens(response: Any) -> int:
    """Roughly four characters per token over the choices of a response document."""
    if not isinstance(response, dict):
        return 0
    chars = 0
    for choice in response.get("choices") or ():
        if isinstance(choice, dict):
            chars += sum(len(t) for t in _text(choice.get("message", choice)))
    return (chars + 3) // 4


def count_events(chunk: bytes) -> int:
    """Data events carrying a JSON object in a chunk of a server-sent event stream."""
    return chunk.count(b"data: {") + chunk.count(b"data:{")


def stream_usage(tail: bytes) -> tuple[int, int] | None:
    """The usage block of the last data event that has one, in the stream's tail.

    Only the lines that mention ``"usage"`` are parsed, last first: the search runs
    backwards from the end, so a stream's tail costs a few ``rfind`` calls.
    """
    end = len(tail)
    while (at := tail.rfind(b'"usage"', 0, end)) >= 0:
        start = tail.rfind(b"\n", 0, at) + 1
        stop = tail.find(b"\n", at)
        line = tail[start:] if stop < 0 else tail[start:stop]
        if line.startswith(b"data:"):
            try:
                found = usage_of(_json.loads(line[5:]))
            except ValueError:
                found = None
            if found is not None:
                return found
        end = start  # the lines before this one
    return None
