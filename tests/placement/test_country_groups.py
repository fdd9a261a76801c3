"""What ``EU`` and ``EEA`` mean in a request, through every door a request comes in.

``EU`` is the 27 member states; ``EEA`` (or ``EU_EEA``) adds Iceland,
Liechtenstein and Norway. Expectations come from the independent tables of
``tests/facts.py``, never from the snapshot under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.facts import EEA, EEA_NOT_EU, EU_MEMBER_STATES

from archipel.core import (
    AcceleratorRequest,
    CatalogSnapshot,
    Constraints,
    SpecError,
    parse_fleet,
    parse_workload,
)
from archipel.placement import PlacementRequest, Planner, plan_fleet


def _workload(countries: Any) -> dict[str, Any]:
    return {
        "name": "a4000",
        "kind": "batch",
        "resources": {"accelerators": "RTXA4000:1"},
        "constraints": {"countries": countries},
    }


WRITTEN = [
    ("EU", ("EU",)),
    ("eu", ("EU",)),
    ("EEA", ("EEA",)),
    ("eea", ("EEA",)),
    ("EU_EEA", ("EEA",)),
    ("eu_eea", ("EEA",)),
    ("FR,EEA", ("FR", "EEA")),
    (["de", "EU"], ("DE", "EU")),
]


@pytest.mark.parametrize(("written", "kept"), WRITTEN, ids=[str(w[0]) for w in WRITTEN])
def test_a_group_keeps_its_own_name(written: Any, kept: tuple[str, ...]) -> None:
    """EEA is never folded into EU (that lost Iceland, Liechtenstein and Norway)."""
    assert Constraints(countries=written).countries == kept


@pytest.mark.parametrize("written", ["EUROPE", "E", "EU27", "F1"])
def test_an_unknown_group_names_the_ones_that_exist(written: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_workload(_workload([written]))
    assert "EU (the 27 member states)" in str(err.value)
    assert "EEA (EU plus IS, LI, NO)" in str(err.value)


@pytest.mark.parametrize("written", ["EEA", "EU_EEA", "eea"])
def test_a_workload_file_asking_for_eea_reaches_norway(planner: Planner, written: str) -> None:
    """The reported bug: Hyperstack sells RTXA4000:1 in Norway (EEA) at 0.15 USD/h."""
    request = PlacementRequest.from_workload(parse_workload(_workload([written])))
    plan = planner.plan(request, top=5)
    assert plan.feasible
    best = plan.placements[0].offer
    assert (best.provider, best.region, best.country) == ("hyperstack", "NORWAY-1", "NO")
    assert all(p.offer.country in EEA for p in plan.placements)


def test_eu_alone_is_the_member_states_and_says_how_to_reach_norway(planner: Planner) -> None:
    request = PlacementRequest.from_workload(parse_workload(_workload(["EU"])))
    plan = planner.plan(request, top=5)
    assert all(p.offer.country in EU_MEMBER_STATES for p in plan.placements)
    messages = [r.example for r in plan.rejections if r.plugin == "countries"]
    assert any("is in NO" in m and "write EEA" in m for m in messages), messages


def test_a_fleet_file_asking_for_eea_reaches_norway(
    planner: Planner, snapshot: CatalogSnapshot
) -> None:
    spec = parse_fleet(
        {
            "horizon": {"start": "2026-12-01", "end": "2026-12-02"},
            "workloads": [{**_workload("EEA"), "duration_hours": 10}],
        }
    )
    plan = plan_fleet(planner, spec)
    assert plan.feasible
    assert {a.option.placement.offer.country for a in plan.assignments} == {"NO"}


GROUP_MODELS = ["RTXA4000", "L40S", "H100", "A100", "L4", "RTX4090"]
GROUPS = [("EU", EU_MEMBER_STATES), ("EEA", EEA)]


@pytest.mark.parametrize("model", GROUP_MODELS)
@pytest.mark.parametrize(("group", "countries"), GROUPS, ids=[g for g, _ in GROUPS])
def test_every_site_a_group_allows_is_in_it_and_every_site_it_allows_is_offered(
    planner: Planner,
    snapshot: CatalogSnapshot,
    group: str,
    countries: frozenset[str],
    model: str,
) -> None:
    """For public data (no policy limit), the sites a group plan can use are exactly
    the catalog's sites of that model in the group's countries (independent list)."""
    block = snapshot.offers.accelerator_slice(model)
    offers = [snapshot.offers.offer(i) for i in range(block.start, block.stop)]
    counts = {o.accelerator_count for o in offers}
    request = PlacementRequest(
        accelerators=tuple(AcceleratorRequest(model, c) for c in sorted(counts)),
        data_class="public",
        spot=True,
        countries=(group,),
    )
    plan = planner.plan(request, top=10_000)
    planned = {p.offer.country for p in plan.placements}
    priced = [o for o in offers if o.price_per_hour or o.spot_price_per_hour]
    offered = {o.country for o in priced} & countries
    assert planned == offered
    if group == "EEA" and offered & EEA_NOT_EU:
        assert planned & EEA_NOT_EU
