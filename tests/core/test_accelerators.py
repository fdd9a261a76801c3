"""Accelerator names: parsing MODEL:COUNT, folding aliases, resolving user input."""

from __future__ import annotations

import pytest

from archipel.core import (
    AcceleratorRequest,
    InputError,
    UnknownAcceleratorError,
    canonical_accelerator,
    parse_accelerator_spec,
    resolve_accelerator,
)

KNOWN = ["A100", "A100-80GB", "H100", "H200", "L4", "L40S", "RTXA6000", "T4"]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("H100:8", AcceleratorRequest("H100", 8)),
        ("H100", AcceleratorRequest("H100", 1)),
        (" L4 : 2 ", AcceleratorRequest("L4", 2)),
        ("A100-80GB:4", AcceleratorRequest("A100-80GB", 4)),
        ("T4:0.5", AcceleratorRequest("T4", 0.5)),
    ],
    ids=[
        "model and count",
        "count defaults to one",
        "spaces ignored",
        "dash in model",
        "fractional share",
    ],
)
def test_parse_spec(spec: str, want: AcceleratorRequest) -> None:
    assert parse_accelerator_spec(spec) == want


@pytest.mark.parametrize("spec", ["", ":8", "H100:0", "H100:-1", "H100:eight"])
def test_parse_spec_rejects_malformed_input(spec: str) -> None:
    with pytest.raises(InputError):
        parse_accelerator_spec(spec)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("H100-MEGA", "H100"),
        ("H100-80G-PCIe", "H100"),
        ("A100-80G-PCIe", "A100-80GB"),
        ("RTX-A6000", "RTXA6000"),
        ("A100", "A100"),
        ("  L4 ", "L4"),
    ],
)
def test_catalog_names_fold_to_one_model(raw: str, canonical: str) -> None:
    assert canonical_accelerator(raw) == canonical


@pytest.mark.parametrize(
    ("typed", "resolved"),
    [
        ("h100", "H100"),
        ("a100-80gb", "A100-80GB"),
        ("A100_80GB", "A100-80GB"),
        ("l40s", "L40S"),
        ("rtx-a6000", "RTXA6000"),
        ("A6000", "RTXA6000"),
    ],
)
def test_user_input_is_resolved_case_and_dash_insensitively(typed: str, resolved: str) -> None:
    assert resolve_accelerator(typed, KNOWN) == resolved


def test_unknown_accelerator_suggests_close_names() -> None:
    with pytest.raises(UnknownAcceleratorError) as err:
        resolve_accelerator("H10", KNOWN)
    assert "H100" in err.value.suggestions
    assert "archipel catalog --accelerators" in str(err.value)


def test_unknown_accelerator_is_an_input_error() -> None:
    with pytest.raises(InputError):
        resolve_accelerator("TPU-v99", KNOWN)


CATALOG_MODELS = [*KNOWN, "Trainium", "Inferentia2", "MI300X", "H200", "A10G"]


@pytest.mark.parametrize(
    ("typed", "model"),
    [
        ("trn1", "Trainium"),
        ("trn1n", "Trainium"),
        ("inf2", "Inferentia2"),
        ("p5", "H100"),
        ("P5E", "H200"),
        ("g5", "A10G"),
        ("MI300", "MI300X"),
        ("mi300", "MI300X"),
    ],
    ids=["trn1", "trn1n", "inf2", "p5", "p5e-upper", "g5", "MI300", "mi300-lower"],
)
def test_instance_family_resolves_to_the_model_it_carries(typed: str, model: str) -> None:
    assert resolve_accelerator(typed, CATALOG_MODELS) == model


def test_family_of_a_model_no_offer_has_says_so_and_suggests_the_closest() -> None:
    with pytest.raises(UnknownAcceleratorError) as err:
        resolve_accelerator("trn2", CATALOG_MODELS)
    assert err.value.suggestions == ["Trainium"]
    assert "trn2 carries Trainium2, which no offer in the catalog has" in str(err.value)


def test_a_catalog_model_name_wins_over_a_family_name() -> None:
    # "P4" is NVIDIA's Tesla P4; the family table must not shadow real model names
    assert resolve_accelerator("P4", [*CATALOG_MODELS, "P4"]) == "P4"
