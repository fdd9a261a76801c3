"""Workload specs validate at the edge, naming the field and what to write instead."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.core import (
    AcceleratorRequest,
    ServePrice,
    ServeSpec,
    SpecError,
    Spread,
    WorkloadKind,
    parse_workload,
)


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


def test_countries_are_upper_cased_and_eea_stays_eea() -> None:
    w = parse_workload(spec(constraints={"countries": ["fr", "de", "eea", "eu"]}))
    assert w.constraints.countries == ("FR", "DE", "EEA", "EU")


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


def service(**serve: Any) -> dict[str, Any]:
    return spec(kind="inference", serve={"model": "llama-3.1-8b", **serve})


def test_a_service_serves_a_model_with_gateway_defaults() -> None:
    w = parse_workload(service())
    assert w.serve == ServeSpec(model="llama-3.1-8b")
    assert w.serve is not None
    assert (w.serve.port, w.serve.path, w.serve.health_path) == (None, "/v1", "/models")
    assert (w.serve.max_concurrency, w.serve.weight, w.serve.owned_by) == (64, 1.0, None)
    assert w.serve.price == ServePrice(
        currency="USD", input_per_million=Decimal(0), output_per_million=Decimal(0)
    )


def test_serve_prices_stay_exact_decimals_through_a_round_trip() -> None:
    w = parse_workload(service(port=8000, price={"currency": "EUR", "input_per_million": "0.20"}))
    again = type(w).model_validate_json(w.model_dump_json(by_alias=True))
    assert again.serve is not None and again.serve.price.input_per_million == Decimal("0.20")
    assert again.serve.port == 8000


@pytest.mark.parametrize(
    ("document", "field", "hint"),
    [
        pytest.param(
            spec(serve={"model": "llama-3.1-8b"}), "serve", "inference", id="serve on training"
        ),
        pytest.param(
            spec(kind="batch", serve={"model": "m"}), "serve", "set kind: inference", id="on batch"
        ),
        pytest.param(service(model="-llama"), "serve.model", "pattern", id="model leading dash"),
        pytest.param(service(model="llama 3"), "serve.model", "pattern", id="model with a space"),
        pytest.param(service(model="m" * 201), "serve.model", "at most 200", id="model too long"),
        pytest.param(service(port=0), "serve.port", "greater than or equal to 1", id="port 0"),
        pytest.param(service(port=65536), "serve.port", "less than or equal", id="port too big"),
        pytest.param(service(path="v1"), "serve.path", "pattern", id="path without slash"),
        pytest.param(service(path="/v1?x=1"), "serve.path", "pattern", id="path with a query"),
        pytest.param(service(health_path="models"), "serve.health_path", "pattern", id="health"),
        pytest.param(service(max_concurrency=0), "serve.max_concurrency", "greater", id="conc 0"),
        pytest.param(service(weight=0), "serve.weight", "greater than 0", id="weight 0"),
        pytest.param(
            service(price={"currency": "usd"}), "serve.price.currency", "pattern", id="currency"
        ),
        pytest.param(
            service(price={"input_per_million": "-1"}),
            "serve.price.input_per_million",
            "greater than or equal to 0",
            id="negative price",
        ),
        pytest.param(service(owned_by=""), "serve.owned_by", "at least 1", id="empty owner"),
        pytest.param(service(replica_port=1), "serve.replica_port", "unknown field", id="extra"),
    ],
)
def test_bad_serve_sections_name_the_field(document: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(document, "svc.yaml")
    assert any(p.startswith(f"{field}:") and hint in p for p in err.value.problems), err.value


def run(**section: Any) -> dict[str, Any]:
    return spec(run={"command": ["python", "train.py"], **section})


def accelerator(count: Any) -> dict[str, Any]:
    return spec(resources={"accelerators": [{"model": "H100", "count": count}]})


@pytest.mark.parametrize(
    ("document", "field", "hint"),
    [
        pytest.param(run(env={"A=B": "1"}), "run.env", "'A=B' is not an environment", id="A=B"),
        pytest.param(run(env={"1X": "1"}), "run.env", "not starting with a digit", id="digit"),
        pytest.param(run(env={"": "1"}), "run.env", "environment variable name", id="empty"),
        pytest.param(run(env={"A": "x\x00y"}), "run.env.A", "NUL", id="NUL in a value"),
        pytest.param(run(command=["sh", "-c", "\x00"]), "run.command[2]", "NUL", id="NUL in arg"),
        pytest.param(run(command="python\x00 x"), "run.command[0]", "NUL", id="NUL in a string"),
        pytest.param(run(command=["", "x"]), "run.command", "program to run", id="blank program"),
        pytest.param(run(env={"A": "\ud800"}), "run.env.A", "lone surrogate", id="surrogate"),
        pytest.param(run(command=["x" * 32_001]), "run.command[0]", "at most", id="huge arg"),
        pytest.param(spec(data={"class": "a\x00"}), "data.class", "NUL", id="NUL in class"),
        pytest.param(
            spec(constraints={"providers": ["aws\x00"]}), "constraints.providers[0]", "NUL", id="p"
        ),
        pytest.param(
            spec(constraints={"max_price_per_hour": float("inf")}),
            "constraints.max_price_per_hour",
            "finite",
            id="infinite budget",
        ),
    ],
)
def test_what_a_process_or_a_database_cannot_take_is_refused(
    document: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(document, "job.yaml")
    assert any(p.startswith(f"{field}:") and hint in p for p in err.value.problems), err.value


def test_posix_environment_names_and_plain_values_are_kept() -> None:
    w = parse_workload(run(env={"WANDB_MODE": "offline", "_x9": "", "Path": "a=b c"}))
    assert w.run is not None and w.run.env == {"WANDB_MODE": "offline", "_x9": "", "Path": "a=b c"}


@pytest.mark.parametrize(
    "count",
    ["inf", float("inf"), float("nan"), "nan", 10**400, None, {}, [1], -1, 0, True, "2", 1025],
    ids=[
        "text inf",
        "1e400",
        "NaN",
        "text nan",
        "400 digits",
        "null",
        "object",
        "list",
        "negative",
        "zero",
        "bool",
        "text number",
        "over the bound",
    ],
)
def test_an_accelerator_count_is_a_positive_finite_bounded_number(count: Any) -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(accelerator(count))
    assert [p.split(":")[0] for p in err.value.problems] == ["resources.accelerators[0].count"]
    assert "greater than 0 and at most 1024" in err.value.problems[0]


@pytest.mark.parametrize(
    "accelerators",
    [
        pytest.param("H100:5000", id="text"),
        pytest.param(["H100:8", "A100:2000"], id="second alternative"),
    ],
)
def test_a_count_written_as_text_is_bounded_too(accelerators: Any) -> None:
    with pytest.raises(SpecError, match=r"resources\.accelerators\[\d\]\.count: .*at most 1024"):
        parse_workload(spec(resources={"accelerators": accelerators}))


@pytest.mark.parametrize(
    ("count", "want"), [(8, 8.0), (0.5, 0.5), (1024, 1024.0)], ids=["whole", "share", "bound"]
)
def test_a_valid_count_in_a_mapping_is_kept(count: float, want: float) -> None:
    w = parse_workload(accelerator(count))
    assert w.resources.accelerators == (AcceleratorRequest("H100", want),)


def test_an_accelerator_mapping_with_another_key_names_it() -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(spec(resources={"accelerators": [{"model": "H100", "count": 1, "n": 2}]}))
    assert err.value.problems == [
        "resources.accelerators[0].n: unknown field; remove it or check its spelling"
    ]


@given(st.from_type(object) | st.floats() | st.integers() | st.text())
def test_any_count_is_either_refused_or_a_bounded_positive_number(count: object) -> None:
    try:
        w = parse_workload(accelerator(count))
    except SpecError:
        return
    (request,) = w.resources.accelerators
    assert 0 < request.count <= 1024
    assert str(request)  # printable: no int(inf)


@pytest.mark.parametrize(
    ("share", "replicas", "cap"),
    [
        pytest.param(1.0, 1, 1, id="one replica, whole share"),
        pytest.param(0.5, 4, 2, id="half of four"),
        pytest.param(0.4, 5, 2, id="two fifths of five"),
        pytest.param(0.67, 3, 2, id="rounded down"),
        pytest.param(0.34, 3, 1, id="a third and a bit"),
        pytest.param(0.3, 3, 1, id="too small for one: still one"),
        pytest.param(0.1, 1, 1, id="one replica: never zero"),
        pytest.param(1 / 3, 3, 1, id="float error does not lose a replica"),
        pytest.param(0.6, 5, 3, id="exact product"),
    ],
)
def test_the_provider_cap_is_the_floor_of_share_times_replicas_at_least_one(
    share: float, replicas: int, cap: int
) -> None:
    assert Spread(max_share_per_provider=share).provider_cap(replicas) == cap
