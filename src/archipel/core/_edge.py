"""Parsing at the edge: one strict base model and one way to word its errors.

Every document a user writes (workload, fleet, policy, sites, gateway config)
and every answer a peer sends (the control plane's routes) is validated by a
:class:`StrictModel`: unknown fields are refused, so a misspelt key is an error
rather than a silent default, and the result is immutable. :func:`validate`
turns pydantic's errors into one problem per field, worded the same way
everywhere: ``<path>: <what to change>``, the path written as the user writes
it (``replicas[0].base_url``, ``run.env``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from archipel.core._errors import DocumentError


class StrictModel(BaseModel):
    """A validated, immutable document part that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


def field_path(loc: Iterable[int | str]) -> str:
    """A field's location as the user writes it: ``a.b[0].c``; ``(document)`` for the root."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def field_problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``<field path>: <what to change>``."""
    loc = tuple(error["loc"])
    if loc[-1:] == ("[key]",):  # a mapping's key, e.g. run.env's: name the mapping
        loc = loc[:-2]
    path = field_path(loc)
    kind = error["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{path}: unknown field; remove it or check its spelling"
    if kind == "missing":
        return f"{path}: required field is missing"
    return f"{path}: {str(error['msg']).removeprefix('Value error, ')}"


def field_problems(exc: ValidationError) -> list[str]:
    """Every error of a failed validation, one line each, in pydantic's order."""
    return [field_problem(e) for e in exc.errors()]


def validate(
    model: type[M],
    document: Any,
    source: str,
    error: Callable[[str, list[str]], DocumentError],
    shape: str,
) -> M:
    """Validate ``document`` as ``model``; raise ``error(source, problems)`` naming each field.

    ``shape`` says what the document must be when it is not a mapping at all
    (e.g. ``"a mapping with name, kind and resources"``).
    """
    if not isinstance(document, Mapping):
        raise error(source, [f"the document must be {shape}"])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise error(source, field_problems(exc)) from None
