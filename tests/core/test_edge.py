"""Parsing at the edge: every document a user writes reports its problems the same way.

One contract for every parser of a user document (workload, fleet, policy,
sites, gateway config): an unknown field is named with its path and the fix, a
missing field is named, a document that is not a mapping says what it must be,
and the message starts with the source and the kind of document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import Field, ValidationError

from archipel.controlplane import parse_sites
from archipel.core import (
    DocumentError,
    InputError,
    PolicyError,
    StrictModel,
    field_path,
    field_problem,
    parse_fleet,
    parse_workload,
)
from archipel.gateway import GatewayConfigError, parse_gateway_config
from archipel.policy import parse_policy

Parser = Callable[[Any, str], object]

# (name, parser, the kind its message names, the exception family callers catch)
PARSERS: list[tuple[str, Parser, str, type[Exception]]] = [
    ("workload", parse_workload, "workload spec", InputError),
    ("fleet", parse_fleet, "workload spec", InputError),
    ("policy", parse_policy, "policy", PolicyError),
    ("sites", parse_sites, "sites file", InputError),
    ("gateway", parse_gateway_config, "gateway config", GatewayConfigError),
]
IDS = [p[0] for p in PARSERS]


@pytest.mark.parametrize(("name", "parse", "what", "family"), PARSERS, ids=IDS)
def test_an_unknown_field_is_named_with_the_fix(
    name: str, parse: Parser, what: str, family: type[Exception]
) -> None:
    with pytest.raises(DocumentError) as err:
        parse({"surprise": 1}, "file.yaml")
    assert isinstance(err.value, family)
    assert str(err.value).startswith(f"file.yaml: invalid {what}\n  - ")
    assert "surprise: unknown field; remove it or check its spelling" in err.value.problems


@pytest.mark.parametrize(("name", "parse", "what", "family"), PARSERS, ids=IDS)
def test_a_document_that_is_not_a_mapping_says_what_it_must_be(
    name: str, parse: Parser, what: str, family: type[Exception]
) -> None:
    with pytest.raises(DocumentError) as err:
        parse(["a", "list"], "file.yaml")
    assert isinstance(err.value, family)
    [problem] = err.value.problems
    assert problem.startswith("the document must be a mapping with ")


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), "(document)"),
        (("name",), "name"),
        (("run", "env"), "run.env"),
        (("replicas", 0, "base_url"), "replicas[0].base_url"),
        (("models", "m", "replicas", 2), "models.m.replicas[2]"),
        ((0,), "[0]"),
    ],
    ids=["root", "field", "nested", "list item", "mapping then list", "top-level list"],
)
def test_a_field_path_is_written_as_the_user_writes_it(loc: tuple[Any, ...], path: str) -> None:
    assert field_path(loc) == path


class _Doc(StrictModel):
    count: int
    env: dict[str, int] = Field(default_factory=dict)


def _problem_of(document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        _Doc.model_validate(document)
    [error] = err.value.errors()
    return field_problem(error)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({}, "count: required field is missing"),
        ({"count": 1, "cuont": 2}, "cuont: unknown field; remove it or check its spelling"),
        ({"count": "many"}, "count: Input should be a valid integer, unable to parse string"),
        ({"count": 1, "env": {"A": "x"}}, "env.A: Input should be a valid integer, unable to"),
    ],
    ids=["missing", "misspelt", "wrong type", "a mapping's value"],
)
def test_each_kind_of_problem_reads_path_then_fix(document: dict[str, Any], problem: str) -> None:
    assert _problem_of(document).startswith(problem)


def test_a_strict_document_is_immutable() -> None:
    doc = _Doc(count=1)
    with pytest.raises(ValidationError):
        doc.count = 2  # type: ignore[misc]
