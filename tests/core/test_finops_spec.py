"""The FinOps spec: commitments with ramps, scopes and discounts; budgets; a fleet spec read as one."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from archipel.core import Commitment, Period, SpecError, parse_finops, parse_fleet

REPO = Path(__file__).resolve().parents[2]
SEVEN_YEARS = {"start": "2025-11-01", "end": "2032-11-01"}


def commitment(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"provider": "aws", "amount": 3_800_000, "period": SEVEN_YEARS}
    doc.update(overrides)
    return doc


def budget(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "radiology-monthly", "tenant": "radiology", "amount": 20_000}
    doc.update(overrides)
    return doc


def test_the_contract_example_parses_with_every_field() -> None:
    spec = parse_finops(
        {
            "currency": "USD",
            "commitments": [
                commitment(
                    name="aws-2025",
                    currency="USD",
                    ramp=[300000, 400000, 500000, 550000, 600000, 650000, 800000],
                    burns={
                        "regions": ["us-east-1"],
                        "accelerators": ["H100"],
                        "services": ["compute", "inference"],
                    },
                    discount=0.15,
                    spent=0,
                )
            ],
            "budgets": [budget(currency="EUR", period="month", alert_at=[0.8, 1.0])],
            "concentration": {"max_share": 0.45, "measure": "spend"},
            "alerts": {"shortfall": 0.05, "overrun": 0.05},
        }
    )
    c = spec.commitments[0]
    assert c.label == "aws-2025"
    assert c.discount == Decimal("0.15")  # exact, as written
    assert sum(c.ramp) == Decimal(3_800_000)
    assert c.burns.regions == ["us-east-1"]
    assert spec.budgets[0].alert_at == [Decimal("0.8"), Decimal(1)]
    assert spec.budgets[0].owner == ("tenant", "radiology")
    assert spec.alerts.shortfall == Decimal("0.05")


def test_defaults_burn_everything_of_the_provider_at_list_price() -> None:
    c = parse_finops({"commitments": [commitment()]}).commitments[0]
    assert c.label == "aws"  # named after the provider
    assert c.burns.everything
    assert c.discount == 0
    assert c.ramp == []


@pytest.mark.parametrize(
    ("period", "years"),
    [
        pytest.param(
            {"start": "2025-11-01", "end": "2032-11-01"},
            [(date(2025 + k, 11, 1), date(2026 + k, 11, 1)) for k in range(7)],
            id="seven whole years",
        ),
        pytest.param(
            {"start": "2026-01-01", "end": "2027-07-01"},
            [(date(2026, 1, 1), date(2027, 1, 1)), (date(2027, 1, 1), date(2027, 7, 1))],
            id="a year and a half: the last year cut short",
        ),
        pytest.param(
            {"start": "2024-02-29", "end": "2026-03-01"},
            [
                (date(2024, 2, 29), date(2025, 2, 28)),
                (date(2025, 2, 28), date(2026, 2, 28)),
                (date(2026, 2, 28), date(2026, 3, 1)),
            ],
            id="29 February: anniversaries on the 28th",
        ),
    ],
)
def test_contract_years(period: dict[str, str], years: list[tuple[date, date]]) -> None:
    c = parse_finops({"commitments": [commitment(period=period, amount=1)]}).commitments[0]
    assert [(y.start, y.end) for y in c.years] == years


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"ramp": [1] * 8}, "8 yearly minimums for a period of 7", id="ramp too long"),
        pytest.param({"ramp": [-1]}, "greater than or equal to 0", id="negative minimum"),
        pytest.param(
            {"ramp": [2_000_000, 2_000_000]}, "add up to 4000000, more than", id="ramp above amount"
        ),
        pytest.param({"discount": 1}, "less than 1", id="discount of 100%"),
        pytest.param({"discount": -0.1}, "greater than or equal to 0", id="negative discount"),
        pytest.param(
            {"burns": {"services": ["storage"]}}, "'compute' or 'inference'", id="unknown service"
        ),
        pytest.param(
            {"burns": {"regions": ["us-east-1", "us-east-1"]}},
            "listed more than once: us-east-1",
            id="region twice",
        ),
        pytest.param(
            {"burns": {"zones": ["a"]}}, "burns.zones: unknown field", id="misspelt scope"
        ),
    ],
)
def test_bad_commitments_name_their_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_finops({"commitments": [commitment(**overrides)]}, "finops.yaml")
    assert message in str(caught.value)
    assert "commitments[0]" in str(caught.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param(
            {"budgets": [budget(tenant=None)]}, "exactly one of tenant or project", id="no owner"
        ),
        pytest.param(
            {"budgets": [budget(project="x")]}, "exactly one of tenant or project", id="two owners"
        ),
        pytest.param(
            {"budgets": [budget(period="week")]}, "'month', 'quarter' or 'year'", id="week"
        ),
        pytest.param({"budgets": [budget(alert_at=[0])]}, "greater than 0", id="zero threshold"),
        pytest.param(
            {"budgets": [budget(alert_at=[0.8, 0.8])]}, "listed more than once", id="twice"
        ),
        pytest.param(
            {"budgets": [budget(), budget()]}, "budget names must be unique", id="same budget"
        ),
        pytest.param(
            {"commitments": [commitment(), commitment()]},
            "commitment names must be unique",
            id="two unnamed commitments of one provider",
        ),
        pytest.param({"alerts": {"shortfall": 2}}, "less than or equal to 1", id="tolerance"),
        pytest.param({"budget": []}, "budget: unknown field", id="misspelt key"),
        pytest.param([], "the document must be a mapping", id="not a mapping"),
    ],
)
def test_bad_specs_name_their_field(doc: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_finops(doc, "finops.yaml")
    assert message in str(caught.value)


def test_two_commitments_with_one_provider_need_names() -> None:
    spec = parse_finops(
        {"commitments": [commitment(name="aws-a"), commitment(name="aws-b", amount=1)]}
    )
    assert [c.label for c in spec.commitments] == ["aws-a", "aws-b"]


def test_budget_thresholds_are_sorted_and_exact() -> None:
    spec = parse_finops({"budgets": [budget(project="frontier", tenant=None, alert_at=[1.2, 0.5])]})
    assert spec.budgets[0].alert_at == [Decimal("0.5"), Decimal("1.2")]
    assert spec.budgets[0].owner == ("project", "frontier")


def test_the_example_fleet_is_a_finops_spec() -> None:
    doc = yaml.safe_load((REPO / "examples/fleet/lab.yaml").read_text())
    spec = parse_finops(doc, "lab.yaml")
    assert [c.provider for c in spec.commitments] == ["aws", "azure", "oci"]
    assert spec.commitments[0].spent == Decimal(500_000)
    assert spec.concentration is not None and spec.concentration.max_share == 0.45
    assert spec.budgets == []


def test_the_fleet_planner_reads_the_extended_commitment() -> None:
    """One model: a fleet spec may carry the ledger's fields, and due_in is unchanged by them."""
    horizon = {"start": "2026-12-01", "end": "2027-01-01"}
    job = {"name": "a", "kind": "training", "resources": {"accelerators": "H100:8"}}
    fleet = parse_fleet(
        {
            "horizon": horizon,
            "workloads": [job],
            "commitments": [
                commitment(
                    period={"start": "2026-01-01", "end": "2027-01-01"},
                    amount=365_000,
                    ramp=[365_000],
                    burns={"regions": ["us-east-1"]},
                    discount=0.2,
                    spent=334_000,
                )
            ],
        }
    )
    c = fleet.commitments[0]
    # 31,000 remaining over the 31 days of December, all of which fall in the horizon
    assert c.due_in(Period(start=date(2026, 12, 1), end=date(2027, 1, 1))) == Decimal(31_000)
    assert isinstance(c, Commitment)
