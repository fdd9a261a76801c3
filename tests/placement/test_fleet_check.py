"""``check`` names every fleet rule an assignment breaks, by how much, in words.

The assignment is made by hand (three replicas at one provider, one at another),
so every expected violation below is worked out from the rule and the counts.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from archipel.core import parse_fleet
from archipel.placement import (
    Assignment,
    Option,
    PlacementRequest,
    Planner,
    Violation,
    candidates,
    check,
)

HORIZON = {"start": "2026-12-01", "end": "2027-01-01"}


def _spec(**extra: Any) -> Any:
    svc = {
        "name": "svc",
        "kind": "inference",
        "resources": {"accelerators": "L4:1"},
        "data": {"class": "public"},
        "replicas": 4,
        "spread": {"min_providers": 3, "min_countries": 2, "max_share_per_provider": 0.5},
    }
    job = {"name": "job", "kind": "batch", "resources": {"accelerators": "L4:1"}}
    return parse_fleet({"horizon": HORIZON, "workloads": [svc, job], **extra})


def _option(planner: Planner, provider: str, cost: int) -> Option:
    request = PlacementRequest.from_workload(_spec().workloads[0])
    request = replace(request, providers=(provider,), countries=("US",))
    placement = planner.plan(request, top=1).placements[0]
    return Option(placement=placement, gpus=1, gpu_hours=Decimal(10), cost=Decimal(cost))


def _assignments(planner: Planner) -> list[Assignment]:
    aws, gcp = _option(planner, "aws", 5), _option(planner, "gcp", 45)
    return [Assignment("svc", aws, 3), Assignment("svc", gcp, 1), Assignment("job", gcp, 1)]


SPREAD = [
    Violation("spread", "svc: providers", Decimal(1), "svc: replicas on 2 providers, rule wants 3"),
    Violation("spread", "svc: countries", Decimal(1), "svc: replicas in 1 countries, rule wants 2"),
    Violation(
        "spread", "svc: aws", Decimal(1), "svc: 3 of 4 replicas at aws, above the share cap (2)"
    ),
]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, SPREAD),
        (
            {"capacity": [{"provider": "aws", "accelerator": "L4", "gpus": 2}]},
            [
                Violation(
                    "capacity", "L4 at aws", Decimal(1), "L4 at aws: 3 GPUs placed, capacity 2"
                ),
                *SPREAD,
            ],
        ),
        (
            {"capacity": [{"provider": "gcp", "accelerator": "L4", "gpus": 2}]},
            SPREAD,  # 2 GPUs at gcp: exactly the capacity, not above it
        ),
        (
            # GPU-hours: aws 30 of 50 = 60% > 50%
            {"concentration": {"max_share": 0.5, "measure": "gpu_hours"}},
            [
                *SPREAD,
                Violation(
                    "concentration",
                    "aws",
                    Decimal("0.1"),
                    "aws holds 60.0% of the fleet's gpu_hours, above the cap of 50%",
                ),
            ],
        ),
        (
            # spend: gcp 90 of 105 = 85.7% > 50%; aws 15 of 105 is below
            {"concentration": {"max_share": 0.5, "measure": "spend"}},
            [
                *SPREAD,
                Violation(
                    "concentration",
                    "gcp",
                    Decimal(90) / Decimal(105) - Decimal("0.5"),
                    "gcp holds 85.7% of the fleet's spend, above the cap of 50%",
                ),
            ],
        ),
        (
            {"concentration": {"max_share": 0.6, "measure": "gpu_hours"}},
            SPREAD,  # exactly at the cap is allowed
        ),
    ],
    ids=["spread", "capacity exceeded", "capacity met", "gpu-hours cap", "spend cap", "at the cap"],
)
def test_check_names_each_broken_rule_and_by_how_much(
    planner: Planner, extra: dict[str, Any], expected: list[Violation]
) -> None:
    spec = _spec(**extra)
    got = check(spec, planner.snapshot, candidates(planner, spec), _assignments(planner))
    assert got == expected


def test_a_spread_kept_is_no_violation(planner: Planner) -> None:
    spec = parse_fleet(
        {
            "horizon": HORIZON,
            "workloads": [
                {
                    "name": "svc",
                    "kind": "inference",
                    "resources": {"accelerators": "L4:1"},
                    "replicas": 2,
                    "spread": {"min_providers": 2, "max_share_per_provider": 0.5},
                }
            ],
        }
    )
    one = [Assignment("svc", _option(planner, p, 5), 1) for p in ("aws", "gcp")]
    assert check(spec, planner.snapshot, candidates(planner, spec), one) == []
