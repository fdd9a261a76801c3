"""A placement request: what it refuses at construction, and what resolving it keeps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from archipel.core import AcceleratorRequest, CatalogSnapshot, InputError, UnknownNameError
from archipel.placement import PlacementRequest

L4 = (AcceleratorRequest("L4", 1),)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"accelerators": ()},
            "a placement request needs at least one accelerator (MODEL:COUNT)",
            id="no accelerator",
        ),
        pytest.param({"nodes": 0}, "nodes must be at least 1", id="no node"),
        pytest.param({"hours": Decimal(0)}, "hours must be positive", id="zero hours"),
        pytest.param({"hours": Decimal(-2)}, "hours must be positive", id="negative hours"),
        pytest.param(
            {"max_price_per_hour": Decimal(0)},
            "max_price_per_hour must be a positive Decimal, got Decimal('0')",
            id="a zero cap",
        ),
        pytest.param(
            {"max_price_per_hour": Decimal("-1.5")},
            "max_price_per_hour must be a positive Decimal, got Decimal('-1.5')",
            id="a negative cap",
        ),
        pytest.param(
            {"max_price_per_hour": 3},
            "max_price_per_hour must be a positive Decimal, got 3",
            id="an int cap",
        ),
        pytest.param(
            {"max_price_per_hour": 2.5},
            "max_price_per_hour must be a positive Decimal, got 2.5",
            id="a float cap",
        ),
        pytest.param(
            {"max_price_per_hour": Decimal("0.0000000001")},
            "max_price_per_hour: 0.0000000001 has more than 9 decimals, finer than the "
            "nano-unit (1e-9) that amounts are kept in: round it to at most 9 decimals",
            id="a cap finer than a nano-unit",
        ),
    ],
)
def test_a_request_refuses_what_cannot_be_planned(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as raised:
        PlacementRequest(**{"accelerators": L4, **fields})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"nodes": 1, "hours": Decimal("0.001")}, id="one node, a short run"),
        pytest.param({"max_price_per_hour": Decimal("0.000000001")}, id="a one nano-unit cap"),
        pytest.param({"max_price_per_hour": Decimal(40)}, id="a whole cap"),
    ],
)
def test_the_smallest_valid_values_are_accepted(fields: dict[str, Any]) -> None:
    request = PlacementRequest(**{"accelerators": L4, **fields})
    assert all(getattr(request, k) == v for k, v in fields.items())


def test_resolving_canonicalises_names_and_keeps_every_other_field(
    snapshot: CatalogSnapshot,
) -> None:
    request = PlacementRequest(
        accelerators=(AcceleratorRequest("h100", 8), AcceleratorRequest("l4", 1)),
        data_class="personal",
        nodes=2,
        spot=True,
        hours=Decimal(3),
        countries=("fr", "eea"),
        providers=("aws", "scaleway"),
        exclude_providers=("vast",),
        max_price_per_hour=Decimal("12.5"),
        name="train",
    )
    assert request.resolved(snapshot) == PlacementRequest(
        accelerators=(AcceleratorRequest("H100", 8), AcceleratorRequest("L4", 1)),
        data_class="personal",
        nodes=2,
        spot=True,
        hours=Decimal(3),
        countries=("FR", "EEA"),
        providers=("aws", "scaleway"),
        exclude_providers=("vast",),
        max_price_per_hour=Decimal("12.5"),
        name="train",
    )


@pytest.mark.parametrize("field", ["providers", "exclude_providers"])
def test_an_unknown_provider_is_named_with_the_request_and_its_field(
    snapshot: CatalogSnapshot, field: str
) -> None:
    fields: dict[str, Any] = {field: ("aws", "ovh")}
    request = PlacementRequest(accelerators=L4, name="train", **fields)
    with pytest.raises(UnknownNameError) as raised:
        request.resolved(snapshot)
    assert (raised.value.where, raised.value.name) == (f"train: {field}", "ovh")
    assert str(raised.value).startswith(f"train: {field}: unknown provider ovh; did you mean")
