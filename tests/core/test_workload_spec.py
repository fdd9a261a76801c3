"""Workload specs validate at the edge, naming the field and what to write instead."""

from __future__ import annotations

from typing import Any

import pytest

from archipel.core import AcceleratorRequest, SpecError, WorkloadKind, parse_workload


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "train-1",
        "kind": "training",
        "resources": {"accelerators": "H100:8"},
        "data": {"class": "personal"},
        "duration_hours": 24,
    }
    base.update(overrides)
    return base


def test_minimal_spec_parses_with_defaults() -> None:
    w = parse_workload(spec())
    assert w.kind is WorkloadKind.TRAINING
    assert w.resources.accelerators == (AcceleratorRequest("H100", 8),)
    assert w.resources.spot is False
    assert w.resources.nodes == 1
    assert w.data.class_ == "personal"
    assert w.constraints.countries == ()


def test_alternatives_keep_their_order() -> None:
    w = parse_workload(spec(resources={"accelerators": ["H200:8", "H100:8"], "spot": True}))
    assert [str(a) for a in w.resources.accelerators] == ["H200:8", "H100:8"]
    assert w.resources.spot


def test_countries_are_upper_cased_and_eu_is_a_group() -> None:
    w = parse_workload(spec(constraints={"countries": ["fr", "de", "eea"]}))
    assert w.constraints.countries == ("FR", "DE", "EU")


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        ({"kind": "trainig"}, "kind", "training"),
        ({"resources": {"accelerators": "H100:zero"}}, "resources.accelerators", "MODEL:COUNT"),
        ({"resources": {"accelerators": []}}, "resources.accelerators", "MODEL:COUNT"),
        ({"resources": {"accelerator": "H100:8"}}, "resources.accelerator", "unknown field"),
        ({"resources": {"accelerators": "H100:8", "nodes": 0}}, "resources.nodes", "greater"),
        ({"duration_hours": -1}, "duration_hours", "greater than 0"),
        ({"constraints": {"countries": ["France"]}}, "constraints.countries", "ISO 3166"),
        ({"constraints": {"max_price_per_hour": 0}}, "constraints.max_price_per_hour", "greater"),
        ({"name": "bad name!"}, "name", "pattern"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
    ids=[
        "kind typo",
        "bad count",
        "empty list",
        "misspelt field",
        "zero nodes",
        "negative duration",
        "country name",
        "zero budget",
        "name charset",
        "extra field",
    ],
)
def test_bad_specs_name_the_field(overrides: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(spec(**overrides), "job.yaml")
    message = str(err.value)
    assert message.startswith("job.yaml: invalid workload spec")
    assert any(p.startswith(f"{field}:") and hint in p for p in err.value.problems), message


def test_missing_fields_are_all_listed() -> None:
    with pytest.raises(SpecError) as err:
        parse_workload({"name": "x"})
    fields = {p.split(":")[0] for p in err.value.problems}
    assert {"kind", "resources"} <= fields


def test_a_non_mapping_document_is_rejected() -> None:
    with pytest.raises(SpecError, match="mapping"):
        parse_workload(["H100:8"])
