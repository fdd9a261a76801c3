"""Fleet documents: validation, horizons and the commitment burn-down."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from archipel.core import Commitment, Period, SpecError, parse_fleet

HORIZON = {"start": "2026-12-01", "end": "2027-01-01"}
JOB = {"name": "a", "kind": "training", "resources": {"accelerators": "H100:8"}}


def fleet(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"horizon": HORIZON, "workloads": [JOB]}
    doc.update(overrides)
    return doc


def test_minimal_fleet() -> None:
    spec = parse_fleet(fleet())
    assert spec.horizon.hours == 31 * 24
    assert spec.hours_of(spec.workloads[0]) == Decimal(744)  # no duration: the whole horizon


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workloads": [JOB, JOB]}, "workload names must be unique: a"),
        ({"horizon": {"start": "2027-01-01", "end": "2026-12-01"}}, "must be after start"),
        ({"workloads": [{**JOB, "duration_hours": 1000}]}, "exceeds the horizon"),
        (
            {"workloads": [{**JOB, "replicas": 2, "spread": {"min_providers": 3}}]},
            "min_providers (3) exceeds replicas (2)",
        ),
        (
            {
                "commitments": [
                    {"provider": "aws", "amount": 1, "period": HORIZON},
                    {"provider": "aws", "amount": 2, "period": HORIZON},
                ]
            },
            "one commitment per provider",
        ),
        ({"commitments": [{"provider": "aws", "amount": -5, "period": HORIZON}]}, "greater than 0"),
        ({"concentration": {"max_share": 1.5}}, "less than or equal to 1"),
        (
            {"capacity": [{"provider": "aws", "accelerator": "H100", "gpus": -1}]},
            "greater than or equal",
        ),
        ({"workloads": []}, "at least 1"),
        ({"budget": 5}, "unknown field"),
    ],
    ids=[
        "duplicate names",
        "backwards horizon",
        "too long",
        "spread vs replicas",
        "two commitments",
        "negative amount",
        "share above one",
        "negative capacity",
        "no workloads",
        "unknown field",
    ],
)
def test_bad_fleets_name_the_problem(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_fleet(fleet(**overrides), "fleet.yaml")
    assert message in str(err.value)


PERIOD = Period(start=date(2026, 1, 1), end=date(2027, 1, 1))  # 365 days


@pytest.mark.parametrize(
    ("horizon", "spent", "due"),
    [
        (Period(start=date(2026, 1, 1), end=date(2026, 2, 1)), 0, Decimal(365_000) * 31 / 365),
        # half spent on 1 July: the rest (182,500) is due over the remaining 184 days
        (
            Period(start=date(2026, 7, 1), end=date(2026, 8, 1)),
            182_500,
            Decimal(182_500) * 31 / 184,
        ),
        (Period(start=date(2027, 1, 1), end=date(2027, 2, 1)), 0, Decimal(0)),  # after the period
        (Period(start=date(2025, 12, 1), end=date(2026, 1, 1)), 0, Decimal(0)),  # before it
        (Period(start=date(2026, 12, 1), end=date(2027, 3, 1)), 0, Decimal(365_000) * 31 / 31),
        (Period(start=date(2026, 1, 1), end=date(2026, 2, 1)), 400_000, Decimal(0)),  # overspent
    ],
    ids=[
        "first month",
        "after half is spent",
        "after the period",
        "before the period",
        "horizon past the end",
        "already overspent",
    ],
)
def test_commitment_due_is_the_remainder_burned_down_linearly(
    horizon: Period, spent: int, due: Decimal
) -> None:
    c = Commitment(provider="aws", amount=Decimal(365_000), period=PERIOD, spent=Decimal(spent))
    assert c.due_in(horizon) == due
