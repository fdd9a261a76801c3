"""A fleet: many workloads planned at once, with capacity, commitments, caps and spread.

Parsed at the edge like a workload spec (the CLI resolves ``file:`` entries);
every problem names its field.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from archipel.core._edge import StrictModel, validate
from archipel.core._errors import SpecError
from archipel.core._money import CommitmentAmount, PositiveCommitmentAmount, decimal_of
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


#: what a commitment's spend can be: compute (GPU-hours, the ``runs`` source) or inference
#: (tokens, the ``gateway`` source)
Service = Literal["compute", "inference"]

#: a rate from 0 (included) to 1 (excluded), read as written (a plain number is exact)
Rate = Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False), BeforeValidator(decimal_of)]


def add_years(day: date, years: int) -> date:
    """``day`` moved ``years`` years on; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


class Burns(StrictModel):
    """What spend burns a commitment down: an empty list means every one of that kind.

    ``accelerators`` are instance families as the ledger names them (``H100``,
    ``MI300X``), matched without regard to case.
    """

    regions: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    accelerators: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)

    @field_validator("regions", "accelerators", "services")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return values

    @property
    def everything(self) -> bool:
        """Whether all of the provider's spend burns the commitment."""
        return not (self.regions or self.accelerators or self.services)


class Commitment(StrictModel):
    """A committed-spend contract: ``amount`` over ``period``, ``spent`` so far.

    The same object serves the fleet planner and the ledger. The planner uses
    ``amount``, ``spent`` and :meth:`due_in`: the part due within a planning
    horizon is what remains, burned down linearly over the rest of the period.
    The ledger burns it down from metered spend: ``burns`` says which of the
    provider's spend counts (default: all of it), ``discount`` is the rate off
    list price the contract buys, ``ramp`` the minimum spend of each contract
    year (year 1 starts on ``period.start``), see docs/commitments.md.
    """

    name: Annotated[str, Field(min_length=1)] | None = None
    provider: Annotated[str, Field(min_length=1)]
    amount: PositiveCommitmentAmount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    period: Period
    spent: CommitmentAmount = Decimal(0)
    ramp: list[CommitmentAmount] = Field(default_factory=list)
    burns: Burns = Burns()
    discount: Rate = Decimal(0)

    @model_validator(mode="after")
    def _ramp_fits(self) -> Commitment:
        years = len(self.years)
        if len(self.ramp) > years:
            raise ValueError(
                f"ramp: {len(self.ramp)} yearly minimums for a period of {years} contract "
                f"year(s) ({self.period.start} to {self.period.end}): give at most {years}"
            )
        total = sum(self.ramp, Decimal(0))
        if total > self.amount:
            raise ValueError(
                f"ramp: the yearly minimums add up to {total:f}, more than the amount "
                f"{self.amount:f}: lower them or raise the amount"
            )
        return self

    @property
    def label(self) -> str:
        """How the commitment is named: its ``name``, else its provider."""
        return self.name or self.provider

    @property
    def years(self) -> list[Period]:
        """The contract years: from each anniversary of the start; the last cut at the end."""
        out = []
        k = 0
        while (start := add_years(self.period.start, k)) < self.period.end:
            out.append(
                Period(start=start, end=min(add_years(self.period.start, k + 1), self.period.end))
            )
            k += 1
        return out

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
