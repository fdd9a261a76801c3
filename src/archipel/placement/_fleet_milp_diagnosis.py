"""Why a fleet cannot be planned: the slacks of the relaxed model, in planner terms.

When the fleet MILP is infeasible, it is solved again with a penalised slack on
every capacity, spread and concentration row
(:func:`archipel.placement._fleet_milp_model.build` with ``relax``). Each slack
left positive is a rule that cannot hold, by that much; :func:`diagnose` turns
it into a :class:`Violation` that says which workloads press on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from archipel.core import FleetSpec
from archipel.placement._fleet_milp_model import ModelKey
from archipel.placement._fleet_model import Candidates, Violation, ViolationFamily
from archipel.placement._highs import Solution


def diagnose(
    solution: Solution | None, key: ModelKey, cands: Sequence[Candidates], spec: FleetSpec
) -> tuple[Violation, ...]:
    """The rules the relaxed model's ``solution`` had to break, and by how much."""
    if solution is None:
        return (_unexplained("the relaxed model found no solution either within the time limit"),)
    values = solution.values
    placed = {pool: round(values[col]) for pool, col in key.y.items()}
    found: list[Violation] = []
    for col, family, subject, unit in key.slacks:
        excess = values[col]
        if excess <= 1e-6:
            continue
        amount = Decimal(repr(round(excess, 4))).normalize()
        if family is ViolationFamily.CAPACITY:
            found.append(_capacity(key, cands, placed, subject, amount, unit))
        elif family is ViolationFamily.SPREAD:
            found.append(_spread(spec, cands[key.owner[col]], subject, amount, unit))
        else:
            found.append(_concentration(subject, amount, unit))
    return tuple(found) or (_unexplained("infeasible, but no single family of rules explains it"),)


def _unexplained(message: str) -> Violation:
    return Violation(ViolationFamily.UNKNOWN, "fleet", Decimal(0), message)


def _capacity(
    key: ModelKey,
    cands: Sequence[Candidates],
    placed: dict[tuple[int, int], int],
    subject: str,
    amount: Decimal,
    unit: str,
) -> Violation:
    limit, members = key.groups[subject]
    users = sorted({cands[wi].workload.name for wi, oi in members if placed[(wi, oi)]})
    classes = sorted({cands[wi].workload.data.class_ for wi, oi in members if placed[(wi, oi)]})
    return Violation(
        ViolationFamily.CAPACITY,
        subject,
        amount,
        f"{', '.join(classes)} workloads need {limit.gpus + amount:f} {limit.accelerator} at "
        f"{limit.where} but the capacity is {limit.gpus} (short by {amount:f} {unit}); placed "
        f"there: {', '.join(users[:8])}{' ...' if len(users) > 8 else ''}",
    )


def _spread(spec: FleetSpec, c: Candidates, subject: str, amount: Decimal, unit: str) -> Violation:
    eligible = sorted({o.provider for o in c.options})
    return Violation(
        ViolationFamily.SPREAD,
        subject,
        amount,
        f"{c.workload.name} ({c.workload.data.class_}, {c.units} replicas): "
        f"{_spread_text(spec, c)}, "
        f"but only {len(eligible)} provider{'s' if len(eligible) != 1 else ''} "
        f"({', '.join(eligible)}) can host it under its data class and constraints "
        f"(short by {amount:f} {unit})",
    )


def _spread_text(spec: FleetSpec, c: Candidates) -> str:
    rule = spec.spread_of(c.workload)
    cap = rule.provider_cap(c.units)
    text = f"spread wants at least {rule.min_providers} providers, at most {cap} replicas each"
    if rule.min_countries > 1:
        text += f", in at least {rule.min_countries} countries"
    return text


def _concentration(subject: str, amount: Decimal, unit: str) -> Violation:
    return Violation(
        ViolationFamily.CONCENTRATION,
        subject,
        amount,
        f"{subject} would exceed its concentration cap ({unit}); no placement of the "
        "other workloads keeps it under",
    )
