"""A fleet: many workloads planned at once, with capacity, commitments, caps and spread.

Parsed at the edge like a workload spec (the CLI resolves ``file:`` entries);
every problem names its field.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from archipel.core._edge import StrictModel, validate
from archipel.core._errors import SpecError
from archipel.core._money import CommitmentAmount, PositiveCommitmentAmount
from archipel.core._workload import Spread, Workload


class Period(StrictModel):
    """A half-open span of days ``[start, end)``."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    @property
    def hours(self) -> int:
        return (self.end - self.start).days * 24


class CapacityLimit(StrictModel):
    """At most ``gpus`` accelerators of one model at a provider (or one of its regions)."""

    provider: Annotated[str, Field(min_length=1)]
    region: str | None = None
    accelerator: Annotated[str, Field(min_length=1)]
    gpus: Annotated[int, Field(ge=0)]


class Commitment(StrictModel):
    """A committed-spend contract: ``amount`` over ``period``, ``spent`` so far.

    The part due within a planning horizon is what remains, burned down
    linearly over the rest of the period (see :meth:`due_in`).
    """

    provider: Annotated[str, Field(min_length=1)]
    amount: PositiveCommitmentAmount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    period: Period
    spent: CommitmentAmount = Decimal(0)

    def due_in(self, horizon: Period) -> Decimal:
        """The share of the remaining commitment that falls due within ``horizon``."""
        start = max(self.period.start, horizon.start)
        end = min(self.period.end, horizon.end)
        if end <= start:
            return Decimal(0)
        remaining = max(Decimal(0), self.amount - self.spent)
        return remaining * Decimal((end - start).days) / Decimal((self.period.end - start).days)


class Concentration(StrictModel):
    """No provider above ``max_share`` of the fleet, by GPU-hours or by spend."""

    max_share: Annotated[float, Field(gt=0, le=1)]
    measure: Literal["gpu_hours", "spend"] = "gpu_hours"
    providers: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=dict)

    def share_for(self, provider: str) -> float:
        return self.providers.get(provider, self.max_share)


class FleetSpec(StrictModel):
    """Everything a fleet plan needs besides the catalog and the policy."""

    name: Annotated[str, Field(min_length=1)] = "fleet"
    horizon: Period
    workloads: Annotated[list[Workload], Field(min_length=1)]
    capacity: list[CapacityLimit] = Field(default_factory=list)
    commitments: list[Commitment] = Field(default_factory=list)
    concentration: Concentration | None = None
    spread: Spread = Spread()

    @model_validator(mode="after")
    def _consistent(self) -> FleetSpec:
        names = [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"workload names must be unique: {', '.join(dupes)}")
        providers = [c.provider for c in self.commitments]
        twice = sorted({p for p in providers if providers.count(p) > 1})
        if twice:
            raise ValueError(f"one commitment per provider, several for: {', '.join(twice)}")
        for w in self.workloads:
            if w.duration_hours is not None and w.duration_hours > self.horizon.hours:
                raise ValueError(
                    f"workload {w.name}: duration_hours {w.duration_hours:g} exceeds the "
                    f"horizon ({self.horizon.hours} h)"
                )
        return self

    def hours_of(self, workload: Workload) -> Decimal:
        """A workload's duration: its own, else the whole horizon."""
        if workload.duration_hours is None:
            return Decimal(self.horizon.hours)
        return Decimal(str(workload.duration_hours))

    def spread_of(self, workload: Workload) -> Spread:
        """A multi-replica workload's spread rule: its own, else the fleet default."""
        return workload.spread if workload.spread is not None else self.spread


def parse_fleet(document: Any, source: str = "<fleet>") -> FleetSpec:
    """Validate a fleet document whose ``workloads`` are already mappings or Workloads."""
    return validate(FleetSpec, document, source, SpecError, "a mapping with horizon and workloads")
