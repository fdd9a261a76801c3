"""Fleet planning, the shared part: candidates per workload and the exact cost account.

Both solvers (the MILP and the greedy baseline) start from the same candidates,
produced by the single-workload engine with each workload's own policy and
constraints, and end with the same :func:`account`, which recomputes every
figure exactly (decimals) from the assignment alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from archipel.core import CatalogSnapshot, FleetSpec, Workload, resolve_accelerator
from archipel.placement._engine import Placement, Planner, RejectionCount
from archipel.placement._request import PlacementRequest


@dataclass(frozen=True, slots=True)
class Option:
    """One pool a workload may use: a placement priced for one unit (job or replica)."""

    placement: Placement
    gpus: int  # accelerators per unit (nodes x per-node count)
    gpu_hours: Decimal  # per unit
    cost: Decimal  # per unit, comparison currency, exact

    @property
    def provider(self) -> str:
        return self.placement.offer.provider

    @property
    def region(self) -> str:
        return self.placement.offer.region

    @property
    def country(self) -> str | None:
        return self.placement.offer.country

    @property
    def accelerator(self) -> str:
        return self.placement.offer.accelerator


@dataclass(frozen=True, slots=True)
class Candidates:
    """A workload and the pools it may use (empty: the workload cannot be placed)."""

    workload: Workload
    units: int  # replicas (1 for jobs)
    hours: Decimal
    options: tuple[Option, ...]
    rejections: tuple[RejectionCount, ...] = ()


def candidates(planner: Planner, spec: FleetSpec) -> list[Candidates]:
    """The feasible pools of every workload, through the single-workload engine.

    Workloads that ask for the same thing (whatever their names and durations)
    share one engine call: pools are found for one hour, then priced for each
    workload's own duration.
    """
    cache: dict[PlacementRequest, tuple[list[Placement], tuple[RejectionCount, ...]]] = {}
    regional = {(c.provider, c.region) for c in spec.capacity if c.region is not None}
    out: list[Candidates] = []
    for w in spec.workloads:
        hours = spec.hours_of(w)
        request = PlacementRequest.from_workload(w)
        shape = dataclasses.replace(request, name="fleet", hours=Decimal(1))
        if shape not in cache:
            pools = planner.options(shape)  # a price cap is per hour: hours do not matter
            rejections = planner.plan(shape, top=1).rejections if not pools else ()
            cache[shape] = (pools, rejections)
        pools, rejections = cache[shape]
        countries = w.replicas > 1 and spec.spread_of(w).min_countries > 1
        options = tuple(_priced(p, hours) for p in _prune(pools, regional, countries))
        out.append(Candidates(w, w.replicas, hours, options, rejections))
    return out


def _prune(
    pools: Sequence[Placement], regional: set[tuple[str, str]], countries: bool
) -> list[Placement]:
    """Keep only pools that the cheapest one of their kind does not dominate.

    Pools of one provider with the same accelerator model and count draw on the
    same provider-wide capacity, commitment and concentration share, so the
    cheapest serves every purpose of the others, unless a region has a capacity
    limit of its own or the service must spread over countries: then the
    cheapest pool per region (or per country) is kept as well. ``pools`` come
    cheapest first.
    """
    seen: set[tuple[object, ...]] = set()
    kept = []
    for p in pools:
        o = p.offer
        key: tuple[object, ...] = (o.provider, o.accelerator, o.accelerator_count)
        if (o.provider, o.region) in regional:
            key += (o.region,)
        if countries:
            key += (o.country,)
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept


def _priced(hourly: Placement, hours: Decimal) -> Option:
    """A one-hour pool, priced for ``hours``."""
    placement = dataclasses.replace(
        hourly,
        hours=hours,
        total_cost=hourly.total_cost * hours,
        comparison_total=hourly.comparison_total * hours,
    )
    return Option(
        placement=placement,
        gpus=int(hourly.offer.accelerator_count * hourly.nodes),
        gpu_hours=Decimal(str(hourly.offer.accelerator_count)) * hourly.nodes * hours,
        cost=placement.comparison_total,
    )


@dataclass(frozen=True, slots=True)
class Assignment:
    """``units`` replicas (or the one job) of a workload on one pool."""

    workload: str
    option: Option
    units: int


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """What the plan does at one provider, against its commitment if any."""

    provider: str
    usage: Decimal
    gpu_hours: Decimal
    gpu_hours_share: Decimal
    spend_share: Decimal
    commitment_due: Decimal | None
    burned: Decimal
    shortfall: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    """The exact cost of an assignment: usage plus commitment shortfalls."""

    providers: tuple[ProviderAccount, ...]
    usage: Decimal
    shortfall: Decimal

    @property
    def total(self) -> Decimal:
        return self.usage + self.shortfall


@dataclass(frozen=True, slots=True)
class CapacityLimit:
    """A fleet's capacity limit, its accelerator resolved against the catalog."""

    provider: str
    region: str | None
    accelerator: str  # the catalog's model name
    gpus: int

    @property
    def where(self) -> str:
        return self.provider + (f"/{self.region}" if self.region else "")

    @property
    def name(self) -> str:
        """How plans and diagnoses name the limit: ``H100 at ovhcloud/GRA11``."""
        return f"{self.accelerator} at {self.where}"

    def covers(self, o: Option) -> bool:
        """Whether the limit counts the GPUs placed on pool ``o``."""
        return (
            o.provider == self.provider
            and o.accelerator == self.accelerator
            and (self.region is None or o.region == self.region)
        )


def capacity_limits(spec: FleetSpec, snapshot: CatalogSnapshot) -> list[CapacityLimit]:
    """The fleet's capacity limits, in the order the spec gives them."""
    known = [a for a in snapshot.offers.accelerators if a]
    return [
        CapacityLimit(
            limit.provider,
            limit.region,
            resolve_accelerator(limit.accelerator, known),
            limit.gpus,
        )
        for limit in spec.capacity
    ]


def check_names(spec: FleetSpec, snapshot: CatalogSnapshot) -> None:
    """Every provider and region the fleet names must be the catalog's.

    A misspelt name would otherwise change the plan without a word (a
    commitment to an unknown provider is all shortfall; a capacity limit on one
    limits nothing). Raises :class:`UnknownNameError` naming the field.
    """
    where = f"fleet {spec.name}"
    for i, limit in enumerate(spec.capacity):
        snapshot.check_provider(limit.provider, f"{where}: capacity[{i}].provider")
        if limit.region is not None:
            snapshot.check_region(limit.provider, limit.region, f"{where}: capacity[{i}].region")
    for i, c in enumerate(spec.commitments):
        snapshot.check_provider(c.provider, f"{where}: commitments[{i}].provider")
    if spec.concentration is not None:
        for provider in spec.concentration.providers:
            snapshot.check_provider(provider, f"{where}: concentration.providers")
    for w in spec.workloads:
        for field_name in ("providers", "exclude_providers"):
            for provider in getattr(w.constraints, field_name):
                snapshot.check_provider(
                    provider, f"{where}: workload {w.name}: constraints.{field_name}"
                )


def commitment_dues(spec: FleetSpec, snapshot: CatalogSnapshot) -> dict[str, Decimal]:
    """Per provider: the commitment due within the horizon, in the comparison currency."""
    dues: dict[str, Decimal] = {}
    for c in spec.commitments:
        rate = snapshot.fx_rates.get(c.currency)
        if rate is None:
            from archipel.core import InputError

            raise InputError(
                f"commitment with {c.provider}: no exchange rate for {c.currency}; "
                f"known: {', '.join(sorted(snapshot.fx_rates))}"
            )
        dues[c.provider] = c.due_in(spec.horizon) * rate
    return dues


def account(assignments: Sequence[Assignment], dues: Mapping[str, Decimal]) -> Account:
    """Recompute spend, shares and shortfalls exactly from an assignment."""
    usage: dict[str, Decimal] = {}
    gpuh: dict[str, Decimal] = {}
    for a in assignments:
        p = a.option.provider
        usage[p] = usage.get(p, Decimal(0)) + a.option.cost * a.units
        gpuh[p] = gpuh.get(p, Decimal(0)) + a.option.gpu_hours * a.units
    total_usage = sum(usage.values(), Decimal(0))
    total_gpuh = sum(gpuh.values(), Decimal(0))
    rows = []
    shortfall_total = Decimal(0)
    for p in sorted(set(usage) | set(dues)):
        spent = usage.get(p, Decimal(0))
        due = dues.get(p)
        shortfall = max(Decimal(0), due - spent) if due is not None else Decimal(0)
        shortfall_total += shortfall
        rows.append(
            ProviderAccount(
                provider=p,
                usage=spent,
                gpu_hours=gpuh.get(p, Decimal(0)),
                gpu_hours_share=gpuh.get(p, Decimal(0)) / total_gpuh if total_gpuh else Decimal(0),
                spend_share=spent / total_usage if total_usage else Decimal(0),
                commitment_due=due,
                burned=min(spent, due) if due is not None else Decimal(0),
                shortfall=shortfall,
            )
        )
    return Account(tuple(rows), total_usage, shortfall_total)


class ViolationFamily(StrEnum):
    """Which kind of fleet rule a :class:`Violation` is about (stable JSON values)."""

    CAPACITY = "capacity"  # a pool's GPU capacity
    CONCENTRATION = "concentration"  # a provider's share of the fleet
    SPREAD = "spread"  # a service's replicas over providers and countries
    UNPLACED = "unplaced"  # a workload with no feasible option
    UNKNOWN = "unknown"  # the solver could not say which rule


@dataclass(frozen=True, slots=True)
class Violation:
    """A fleet rule that a plan breaks (greedy) or that cannot hold (diagnosis)."""

    family: ViolationFamily
    subject: str
    excess: Decimal  # how far over, in the rule's unit
    message: str


@dataclass(frozen=True, slots=True)
class SolverReport:
    """How the solver ended."""

    solver: str
    status: str
    objective: Decimal | None
    bound: Decimal | None
    gap: float | None
    variables: int
    constraints: int
    integer_variables: int
    seconds: float


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """The answer for a fleet: assignments, the exact account and how it was found."""

    name: str
    feasible: bool
    assignments: tuple[Assignment, ...]
    account: Account
    currency: str
    solver: SolverReport
    violations: tuple[Violation, ...] = ()
    diagnosis: tuple[Violation, ...] = ()
    unplaceable: tuple[Candidates, ...] = field(default=())
