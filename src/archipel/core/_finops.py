"""A FinOps spec: the commitments, budgets, caps and alert tolerances the ledger watches.

Parsed at the edge like a fleet spec (the CLI reads the file); every problem
names its field. A fleet spec is also a FinOps spec: :func:`parse_finops`
takes its ``commitments`` and ``concentration`` and ignores the keys that only
plan a fleet (:data:`FLEET_ONLY`), so one file can serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from archipel.core._edge import StrictModel, validate
from archipel.core._errors import SpecError
from archipel.core._fleet import Commitment, Concentration
from archipel.core._money import PositiveCommitmentAmount, decimal_of

#: the keys of a fleet spec that only the fleet planner reads: a FinOps spec ignores them
FLEET_ONLY = frozenset({"horizon", "workloads", "capacity", "spread", "offers"})

#: a fraction of a budget, above zero (1.2 alerts at 120% of the amount)
Fraction = Annotated[Decimal, Field(gt=0, le=10, allow_inf_nan=False), BeforeValidator(decimal_of)]
#: a tolerance: a fraction of the commitment's amount from 0 to 1
Tolerance = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False), BeforeValidator(decimal_of)]
BudgetPeriod = Literal["month", "quarter", "year"]


class Budget(StrictModel):
    """At most ``amount`` per calendar ``period`` for one tenant or one project."""

    name: Annotated[str, Field(min_length=1)]
    tenant: Annotated[str, Field(min_length=1)] | None = None
    project: Annotated[str, Field(min_length=1)] | None = None
    amount: PositiveCommitmentAmount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    period: BudgetPeriod = "month"
    alert_at: list[Fraction] = Field(default_factory=lambda: [Decimal("0.8"), Decimal(1)])

    @field_validator("alert_at")
    @classmethod
    def _ordered(cls, values: list[Decimal]) -> list[Decimal]:
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(f'{v:f}' for v in twice)}")
        return sorted(values)

    @model_validator(mode="after")
    def _one_owner(self) -> Budget:
        if (self.tenant is None) == (self.project is None):
            raise ValueError("give exactly one of tenant or project: whose spend the budget caps")
        return self

    @property
    def owner(self) -> tuple[Literal["tenant", "project"], str]:
        """Which column of the entries the budget filters on, and the value."""
        if self.tenant is not None:
            return "tenant", self.tenant
        assert self.project is not None
        return "project", self.project


class AlertTolerances(StrictModel):
    """How far the forecast at term end may fall short of, or pass, a commitment's amount
    (a fraction of it) before an alert is raised."""

    shortfall: Tolerance = Decimal("0.05")
    overrun: Tolerance = Decimal("0.05")


class FinOpsSpec(StrictModel):
    """What the ledger's commitments, forecast, budgets and alerts are measured against."""

    name: Annotated[str, Field(min_length=1)] = "finops"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    commitments: list[Commitment] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    concentration: Concentration | None = None
    alerts: AlertTolerances = AlertTolerances()

    @model_validator(mode="after")
    def _unique(self) -> FinOpsSpec:
        labels = [c.label for c in self.commitments]
        twice = sorted({n for n in labels if labels.count(n) > 1})
        if twice:
            raise ValueError(
                f"commitment names must be unique (a commitment without a name is named after "
                f"its provider): {', '.join(twice)}; give each a distinct `name`"
            )
        names = [b.name for b in self.budgets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"budget names must be unique: {', '.join(twice)}")
        return self


def parse_finops(document: Any, source: str = "<finops>") -> FinOpsSpec:
    """Validate a FinOps document; a fleet document's planning-only keys are ignored."""
    if isinstance(document, Mapping):
        document = {k: v for k, v in document.items() if k not in FLEET_ONLY}
    return validate(
        FinOpsSpec, document, source, SpecError, "a mapping with commitments and/or budgets"
    )
