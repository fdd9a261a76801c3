"""The request fields the gateway reads, checked before routing; the token estimate's bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.gateway._request import PROMPT_FIELDS, Problem, check_body
from archipel.gateway._usage import estimate_input_tokens

CHAT = "/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("suffix", "doc"),
    [
        pytest.param(CHAT, {"model": "m", "messages": MESSAGES}, id="chat"),
        pytest.param(CHAT, {"model": "m", "messages": MESSAGES, "stream": True}, id="stream"),
        pytest.param(CHAT, {"model": "m", "messages": MESSAGES, "stream": None}, id="stream null"),
        pytest.param(
            CHAT,
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            id="content parts",
        ),
        pytest.param(
            CHAT,
            {"model": "m", "messages": [{"role": "assistant", "content": None}]},
            id="content null (tool calls)",
        ),
        pytest.param(CHAT, {"model": "m", "messages": [], "max_tokens": "x"}, id="unread field"),
        pytest.param("/completions", {"model": "m"}, id="completion without prompt"),
        pytest.param("/completions", {"model": "m", "prompt": [1, 2, 3]}, id="token prompt"),
        pytest.param("/embeddings", {"model": "m", "input": "hello"}, id="embedding"),
        pytest.param("/embeddings", {"model": "m", "input": [[1, 2], [3]]}, id="token inputs"),
    ],
)
def test_bodies_the_gateway_can_read(suffix: str, doc: dict[str, Any]) -> None:
    assert check_body(suffix, doc) is None


@pytest.mark.parametrize(
    ("suffix", "doc", "param", "code"),
    [
        pytest.param(CHAT, [], None, "invalid_request_body", id="an array"),
        pytest.param(CHAT, "m", None, "invalid_request_body", id="a string"),
        pytest.param(
            CHAT, {"messages": MESSAGES}, "model", "missing_required_parameter", id="no model"
        ),
        pytest.param(
            CHAT, {"model": 7, "messages": MESSAGES}, "model", "invalid_type", id="model number"
        ),
        pytest.param(
            CHAT,
            {"model": "m", "messages": MESSAGES, "stream": "false"},
            "stream",
            "invalid_type",
            id="stream text",
        ),
        pytest.param(
            CHAT,
            {"model": "m", "messages": MESSAGES, "stream": 0},
            "stream",
            "invalid_type",
            id="stream 0",
        ),
        pytest.param(
            CHAT, {"model": "m"}, "messages", "missing_required_parameter", id="no messages"
        ),
        pytest.param(
            CHAT, {"model": "m", "messages": "hi"}, "messages", "invalid_type", id="messages text"
        ),
        pytest.param(
            CHAT,
            {"model": "m", "messages": [["hi"]]},
            "messages[0]",
            "invalid_type",
            id="message array",
        ),
        pytest.param(
            CHAT,
            {"model": "m", "messages": [*MESSAGES, {"role": "user", "content": {"text": "hi"}}]},
            "messages[1].content",
            "invalid_type",
            id="content object",
        ),
        pytest.param(
            "/completions",
            {"model": "m", "prompt": {"a": 1}},
            "prompt",
            "invalid_type",
            id="prompt object",
        ),
        pytest.param(
            "/embeddings", {"model": "m"}, "input", "missing_required_parameter", id="no input"
        ),
        pytest.param(
            "/embeddings", {"model": "m", "input": 3}, "input", "invalid_type", id="input number"
        ),
    ],
)
def test_bodies_the_gateway_refuses_name_the_field(
    suffix: str, doc: Any, param: str | None, code: str
) -> None:
    problem = check_body(suffix, doc)
    assert problem is not None
    assert (problem.param, problem.code) == (param, code)
    if param is not None:
        assert f"`{param}`" in problem.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["model", "stream", "messages", "prompt", "input", "content", "text"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@given(suffix=st.sampled_from(sorted(PROMPT_FIELDS)), doc=JSON)
def test_any_json_document_is_either_readable_or_a_problem(suffix: str, doc: Any) -> None:
    assert isinstance(check_body(suffix, doc), Problem | None)


@given(depth=st.integers(min_value=0, max_value=5000), key=st.sampled_from(["content", "text"]))
def test_the_estimate_never_walks_deeper_than_a_message_part(depth: int, key: str) -> None:
    """However deep a prompt nests, the estimate is bounded work and never fails."""
    nested: Any = "x" * 40
    for _ in range(depth):
        nested = [nested] if depth % 2 else {key: nested}
    tokens = estimate_input_tokens({"messages": [{"role": "user", "content": nested}]})
    assert tokens == (10 if depth <= 4 else 1)  # content, then four levels of parts
