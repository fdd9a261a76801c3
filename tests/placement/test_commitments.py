"""What a committed-spend contract costs a fleet plan: the part due, in the
comparison currency, and the shortfall when the plan spends less.

Expected figures are worked out by hand in each case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest

from archipel.core import (
    AcceleratorRequest,
    CatalogSnapshot,
    InputError,
    parse_fleet,
    parse_workload,
)
from archipel.placement import (
    Assignment,
    Option,
    PlacementRequest,
    Planner,
    account,
    commitment_dues,
    plan_fleet,
)

HORIZON = {"start": "2026-12-01", "end": "2026-12-31"}  # 30 days
# Exchange rates chosen for easy arithmetic, not the shipped ones.
RATES = {"USD": Decimal(1), "EUR": Decimal("1.5"), "GBP": Decimal("1.25"), "CHF": Decimal("1.1")}


def _spec(*commitments: dict[str, Any]) -> Any:
    return parse_fleet(
        {
            "horizon": HORIZON,
            "workloads": [
                {"name": "w", "kind": "batch", "resources": {"accelerators": "L4:1"}},
            ],
            "commitments": list(commitments),
        }
    )


@dataclass(frozen=True)
class Due:
    name: str
    commitment: dict[str, Any]
    due: Decimal  # in USD, by hand


DUES = [
    Due(
        "USD, the whole period inside the horizon",
        {"provider": "aws", "amount": 3000, "period": HORIZON},
        Decimal(3000),
    ),
    Due(
        "EUR is converted at the EUR rate",
        {"provider": "scaleway", "amount": 3000, "currency": "EUR", "period": HORIZON},
        Decimal(4500),  # 3000 EUR x 1.5
    ),
    Due(
        "GBP is converted at the GBP rate",
        {"provider": "ovhcloud", "amount": 800, "currency": "GBP", "period": HORIZON},
        Decimal(1000),  # 800 GBP x 1.25
    ),
    Due(
        "EUR, a third of a 90-day period, part already spent",
        {
            "provider": "scaleway",
            "amount": 9000,
            "spent": 3000,
            "currency": "EUR",
            "period": {"start": "2026-12-01", "end": "2027-03-01"},  # 90 days
        },
        Decimal(3000),  # (9000 - 3000) x 30/90 EUR = 2000 EUR x 1.5
    ),
    Due(
        "a commitment already spent in full owes nothing",
        {"provider": "aws", "amount": 100, "spent": 250, "period": HORIZON},
        Decimal(0),
    ),
]


@pytest.mark.parametrize("case", DUES, ids=[d.name for d in DUES])
def test_the_part_due_is_converted_into_the_comparison_currency(
    snapshot: CatalogSnapshot, case: Due
) -> None:
    priced = replace(snapshot, fx_rates=RATES)
    dues = commitment_dues(_spec(case.commitment), priced)
    assert dues == {case.commitment["provider"]: case.due}


def test_a_commitment_in_an_unknown_currency_names_the_known_ones(
    snapshot: CatalogSnapshot,
) -> None:
    spec = _spec({"provider": "aws", "amount": 10, "currency": "JPY", "period": HORIZON})
    with pytest.raises(InputError, match=r"no exchange rate for JPY; known: CHF, EUR, GBP, USD"):
        commitment_dues(spec, replace(snapshot, fx_rates=RATES))


def _option(planner: Planner, provider: str, cost: Decimal) -> Option:
    request = PlacementRequest.from_workload(_spec().workloads[0])
    request = replace(request, providers=(provider,), data_class="public")
    placement = planner.plan(request, top=1).placements[0]
    return Option(placement=placement, gpus=1, gpu_hours=Decimal(10), cost=cost)


@dataclass(frozen=True)
class Shortfall:
    name: str
    spend: Decimal  # usage at the committed provider (cost 1 x units)
    due: Decimal
    shortfall: Decimal  # by hand
    burned: Decimal


SHORTFALLS = [
    Shortfall(
        "underspent: the rest is owed", Decimal(300), Decimal(1000), Decimal(700), Decimal(300)
    ),
    Shortfall("spent exactly", Decimal(1000), Decimal(1000), Decimal(0), Decimal(1000)),
    Shortfall(
        "overspent: nothing owed, never a credit",
        Decimal(1600),
        Decimal(1000),
        Decimal(0),
        Decimal(1000),
    ),
    Shortfall("nothing used: all of it owed", Decimal(0), Decimal(1000), Decimal(1000), Decimal(0)),
]


@pytest.mark.parametrize("case", SHORTFALLS, ids=[s.name for s in SHORTFALLS])
def test_shortfall_is_what_remains_due_and_never_negative(
    planner: Planner, case: Shortfall
) -> None:
    assignments = []
    if case.spend:
        assignments.append(Assignment("w", _option(planner, "aws", case.spend), 1))
    assignments.append(Assignment("w2", _option(planner, "gcp", Decimal(50)), 2))
    result = account(assignments, {"aws": case.due})
    (aws,) = [p for p in result.providers if p.provider == "aws"]
    assert aws.shortfall == case.shortfall
    assert aws.burned == case.burned
    assert aws.commitment_due == case.due
    assert result.shortfall == case.shortfall
    assert result.usage == case.spend + Decimal(100)  # gcp: 50 x 2 units
    assert result.total == case.spend + Decimal(100) + case.shortfall


def test_a_fleet_plan_owes_a_euro_commitment_at_the_exchange_rate(
    planner: Planner, snapshot: CatalogSnapshot
) -> None:
    """End to end: a 1,000,000 EUR commitment with a provider the plan barely uses."""
    spec = _spec(
        {"provider": "scaleway", "amount": 1_000_000, "currency": "EUR", "period": HORIZON}
    )
    plan = plan_fleet(planner, spec)
    assert plan.feasible
    rate = snapshot.fx_rates["EUR"]
    due = Decimal(1_000_000) * rate
    used = sum(
        (a.option.cost * a.units for a in plan.assignments if a.option.provider == "scaleway"),
        Decimal(0),
    )
    assert plan.account.shortfall == due - used
    assert due - used > Decimal(1_000_000)  # the rate is above 1: converted, not taken as USD


def test_every_provider_row_of_an_account(planner: Planner) -> None:
    """aws: 2 units x 10 GPU-h, cost 30 each; gcp: 1 unit x 10 GPU-h, cost 40; an azure
    commitment of 100 that nothing uses. Shares and shortfalls by hand."""
    aws, gcp = _option(planner, "aws", Decimal(30)), _option(planner, "gcp", Decimal(40))
    result = account([Assignment("a", aws, 2), Assignment("b", gcp, 1)], {"azure": Decimal(100)})
    rows = {
        p.provider: (
            p.usage,
            p.gpu_hours,
            p.gpu_hours_share,
            p.spend_share,
            p.commitment_due,
            p.burned,
            p.shortfall,
        )
        for p in result.providers
    }
    assert rows == {
        "aws": (Decimal(60), Decimal(20), Decimal(20) / Decimal(30), Decimal("0.6"), None, 0, 0),
        "azure": (Decimal(0), Decimal(0), Decimal(0), Decimal(0), Decimal(100), 0, Decimal(100)),
        "gcp": (Decimal(40), Decimal(10), Decimal(10) / Decimal(30), Decimal("0.4"), None, 0, 0),
    }
    assert [p.provider for p in result.providers] == ["aws", "azure", "gcp"]
    assert (result.usage, result.shortfall, result.total) == (100, 100, 200)


def test_assignments_at_one_provider_add_up(planner: Planner) -> None:
    """aws: 2 units of one workload and 1 of another, 10 GPU-h and cost 30 each."""
    aws = _option(planner, "aws", Decimal(30))
    result = account([Assignment("a", aws, 2), Assignment("b", aws, 1)], {})
    (row,) = result.providers
    assert (row.usage, row.gpu_hours, row.gpu_hours_share, row.spend_share) == (90, 30, 1, 1)
    assert (result.usage, result.total) == (90, 90)


def test_an_empty_assignment_owes_every_commitment_and_has_no_shares() -> None:
    result = account([], {"aws": Decimal(5)})
    (aws,) = result.providers
    assert (aws.usage, aws.gpu_hours, aws.gpu_hours_share, aws.spend_share) == (0, 0, 0, 0)
    assert (aws.burned, aws.shortfall, result.total) == (0, 5, 5)
    assert type(result.usage) is Decimal  # money is never an int or a float, even nothing


def test_a_request_from_a_workload_carries_every_field() -> None:
    workload = parse_workload(
        {
            "name": "train-eu",
            "kind": "training",
            "resources": {"accelerators": ["H100:8", "A100:4"], "nodes": 2, "spot": True},
            "data": {"class": "personal"},
            "constraints": {
                "countries": ["FR", "EEA"],
                "providers": ["ovhcloud", "scaleway"],
                "exclude_providers": ["vast"],
                "max_price_per_hour": 60.5,
            },
            "duration_hours": 48,
        }
    )
    request = PlacementRequest.from_workload(workload)
    assert request == PlacementRequest(
        accelerators=(AcceleratorRequest("H100", 8.0), AcceleratorRequest("A100", 4.0)),
        data_class="personal",
        nodes=2,
        spot=True,
        hours=Decimal(48),
        countries=("FR", "EEA"),
        providers=("ovhcloud", "scaleway"),
        exclude_providers=("vast",),
        max_price_per_hour=Decimal("60.5"),
        name="train-eu",
    )
    bare = parse_workload({"name": "b", "kind": "batch", "resources": {"accelerators": "L4:1"}})
    plain = PlacementRequest.from_workload(bare)
    assert (plain.hours, plain.max_price_per_hour, plain.spot) == (Decimal(1), None, False)
