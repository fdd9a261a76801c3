"""The greedy baseline does what its docstring says, on inputs whose answer is worked out
from the candidate lists by hand: biggest workload first, cheapest pool with capacity
left, at most the allowed share per provider, and enough providers for a service."""

from __future__ import annotations

from typing import Any

from archipel.core import parse_fleet
from archipel.placement import Planner, candidates, greedy

HORIZON = {"start": "2026-12-01", "end": "2027-01-01"}


def _job(name: str, hours: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": extra.pop("kind", "batch"),
        "resources": {"accelerators": "H100:8"},
        "data": {"class": "public"},
        "duration_hours": hours,
        **extra,
    }


def test_the_biggest_workload_gets_the_cheapest_pool_when_capacity_is_short(
    planner: Planner,
) -> None:
    probe = parse_fleet({"horizon": HORIZON, "workloads": [_job("big", 100)]})
    cheapest = candidates(planner, probe)[0].options[0]
    doc = {
        "horizon": HORIZON,
        # the small one is listed first: order of the file must not matter
        "workloads": [_job("small", 10), _job("big", 100)],
        "capacity": [{"provider": cheapest.provider, "accelerator": "H100", "gpus": cheapest.gpus}],
    }
    spec = parse_fleet(doc)
    cands = candidates(planner, spec)
    assignments, unplaced = greedy(spec, planner.snapshot, cands)
    assert unplaced == []
    where = {a.workload: a.option for a in assignments}
    assert (
        where["big"] == cheapest or where["big"].placement.offer.key == cheapest.placement.offer.key
    )
    small_options = next(c for c in cands if c.workload.name == "small").options
    expected_small = next(o for o in small_options if o.provider != cheapest.provider)
    assert where["small"].placement.offer.key == expected_small.placement.offer.key


def test_a_service_spreads_one_replica_per_provider_over_the_cheapest_providers(
    planner: Planner,
) -> None:
    svc = _job(
        "svc",
        24,
        kind="inference",
        replicas=3,
        spread={"min_providers": 2, "max_share_per_provider": 0.5},
    )
    spec = parse_fleet({"horizon": HORIZON, "workloads": [svc]})
    cands = candidates(planner, spec)
    assignments, unplaced = greedy(spec, planner.snapshot, cands)
    assert unplaced == []
    # at most floor(0.5 x 3) = 1 replica per provider: the cheapest pool of each of
    # the first three providers in price order
    expected: list[str] = []
    for o in cands[0].options:
        if o.provider not in {e.split("/")[0] for e in expected}:
            expected.append(o.placement.offer.key)
        if len(expected) == 3:
            break
    got = sorted((a.option.placement.offer.key, a.units) for a in assignments)
    assert got == sorted((key, 1) for key in expected)


def test_a_unit_with_no_capacity_left_is_reported_unplaced(planner: Planner) -> None:
    doc = {
        "horizon": HORIZON,
        "workloads": [_job("only", 10, resources={"accelerators": "H100:8"})],
    }
    spec = parse_fleet(doc)
    cands = candidates(planner, spec)
    providers = sorted({o.provider for o in cands[0].options})
    doc["capacity"] = [{"provider": p, "accelerator": "H100", "gpus": 0} for p in providers]
    spec = parse_fleet(doc)
    assignments, unplaced = greedy(spec, planner.snapshot, candidates(planner, spec))
    assert assignments == []
    assert [(v.family, v.subject, v.message) for v in unplaced] == [
        ("unplaced", "only", "only: greedy found no pool with capacity left for one unit")
    ]
