"""Token counts: the upstream's usage block first, an estimate otherwise."""

from __future__ import annotations

import pytest

from archipel.gateway._usage import (
    count_events,
    estimate_input_tokens,
    estimate_output_tokens,
    stream_usage,
    usage_of,
)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param({"usage": {"prompt_tokens": 3, "completion_tokens": 2}}, (3, 2), id="chat"),
        pytest.param({"usage": {"prompt_tokens": 4, "total_tokens": 4}}, (4, 0), id="embeddings"),
        pytest.param({"usage": None}, None, id="null"),
        pytest.param({"usage": {"prompt_tokens": "3"}}, None, id="not a number"),
        pytest.param([], None, id="not an object"),
    ],
)
def test_usage_of(doc: object, expected: tuple[int, int] | None) -> None:
    assert usage_of(doc) == expected


def test_estimates_are_about_four_characters_a_token() -> None:
    request = {"messages": [{"role": "user", "content": "x" * 40}]}
    assert estimate_input_tokens(request) == 10
    assert estimate_input_tokens({"input": ["abcd", "efgh"]}) == 2
    answer = {"choices": [{"message": {"content": "y" * 8}}, {"text": "zzzz"}]}
    assert estimate_output_tokens(answer) == 3


def test_stream_usage_is_read_from_the_tail() -> None:
    tail = (
        b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert stream_usage(tail) == (7, 3)
    assert stream_usage(b"data: [DONE]\n\n") is None
    assert count_events(tail) == 2


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        pytest.param(
            b'data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
            b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n',
            (7, 3),
            id="the last of two",
        ),
        pytest.param(
            b'data: {"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
            b'data: {"usage":{"prompt_tokens":"x"}}\n\n',
            (7, 3),
            id="the last one is not a usage block: the one before",
        ),
        pytest.param(
            b'data: {"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
            b'data: {"choices":[{"delta":{"content":"x"}}],"usage":{"prompt',
            (7, 3),
            id="cut in the middle of the last event",
        ),
        pytest.param(
            b': "usage" in a comment\n\ndata: {"usage":{"prompt_tokens":2,"completion_tokens":5}}',
            (2, 5),
            id="no newline at the end",
        ),
        pytest.param(b'event: x\n: "usage"\n\n', None, id="only outside data lines"),
        pytest.param(
            b'data: {"usage":{"prompt_tokens":4,"completion_tokens":1}}\r\n\r\n',
            (4, 1),
            id="CRLF line ends",
        ),
    ],
)
def test_stream_usage_is_the_last_data_event_with_a_usage_block(
    tail: bytes, expected: tuple[int, int] | None
) -> None:
    assert stream_usage(tail) == expected
