"""The fleet planner's candidates: which pools a workload may use, and at what cost.

The catalog is made up and small, so every expected pool and figure below is
worked out by hand from the rows in ``ROWS`` (prices per node and hour):

======================  ======  ==========  ======  =============
site                    country instance    GPUs    price
======================  ======  ==========  ======  =============
aws/us-east-1           US      i-1         L4:1    1 USD
aws/eu-west-3           FR      i-1         L4:1    2 USD
aws/eu-west-3           FR      i-2         L4:1    3 USD (same pool as i-1, dearer)
aws/eu-west-3           FR      i-3         L4:8    8 USD
scaleway/fr-par         FR      i-1         L4:1    2 EUR = 3 USD
gcp/europe-west6        CH      i-1         L4:1    4 USD
======================  ======  ==========  ======  =============
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from archipel.catalog import build_table
from archipel.catalog._sources import OfferRow
from archipel.core import (
    MISSING,
    NANO,
    CatalogSnapshot,
    Reason,
    UnknownNameError,
    parse_fleet,
)
from archipel.placement import Placement, PlacementRequest, Planner, candidates, plan_fleet
from archipel.policy import Policy

SITES = {
    ("aws", "us-east-1"): "US",
    ("aws", "eu-west-3"): "FR",
    ("scaleway", "fr-par"): "FR",
    ("gcp", "europe-west6"): "CH",
}
RATES = {"USD": Decimal(1), "EUR": Decimal("1.5")}
HORIZON = {"start": "2026-12-01", "end": "2027-01-01"}


def _row(site: str, instance: str, count: float, price: int, currency: str = "USD") -> OfferRow:
    provider, region = site.split("/")
    return OfferRow(
        provider=provider,
        region=region,
        zone="z-a",
        instance_type=instance,
        accelerator="L4",
        accelerator_count=count,
        gpu_memory_mib=0,
        vcpus=None,
        memory_gib=None,
        price=price * NANO,
        spot_price=MISSING,
        currency=currency,
        source="test",
    )


ROWS = [
    _row("aws/us-east-1", "i-1", 1, 1),
    _row("aws/eu-west-3", "i-1", 1, 2),
    _row("aws/eu-west-3", "i-2", 1, 3),
    _row("aws/eu-west-3", "i-3", 8, 8),
    _row("scaleway/fr-par", "i-1", 1, 2, "EUR"),
    _row("gcp/europe-west6", "i-1", 1, 4),
]


@pytest.fixture(scope="module")
def tiny(snapshot: CatalogSnapshot, policy: Policy) -> Planner:
    made_up = CatalogSnapshot(
        offers=build_table(ROWS, SITES, RATES),
        providers=snapshot.providers,
        jurisdictions=snapshot.jurisdictions,
        comparison_currency="USD",
        fx_rates=RATES,
    )
    return Planner(made_up, policy)


def _workload(name: str = "w", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerators": "L4:1"},
        "data": {"class": "public"},
        "duration_hours": 10,
        **extra,
    }


def _fleet(*workloads: dict[str, Any], **extra: Any) -> Any:
    return parse_fleet({"name": "f", "horizon": HORIZON, "workloads": list(workloads), **extra})


# -- which pools ----------------------------------------------------------------


@dataclass(frozen=True)
class Pools:
    name: str
    workload: dict[str, Any]
    fleet: dict[str, Any]
    pools: list[str]  # provider/region Lcount, in the order given (cheapest first)


SERVICE: dict[str, Any] = {"kind": "inference", "replicas": 2}
POOLS = [
    Pools(
        "one pool per provider and hardware: the cheapest region stands for the others",
        _workload(),
        {},
        ["aws/us-east-1 L4:1", "scaleway/fr-par L4:1", "gcp/europe-west6 L4:1"],
    ),
    Pools(
        "a provider-wide capacity limit changes nothing",
        _workload(),
        {"capacity": [{"provider": "aws", "accelerator": "L4", "gpus": 4}]},
        ["aws/us-east-1 L4:1", "scaleway/fr-par L4:1", "gcp/europe-west6 L4:1"],
    ),
    Pools(
        "a region with a capacity limit of its own keeps its cheapest pool",
        _workload(),
        {"capacity": [{"provider": "aws", "region": "eu-west-3", "accelerator": "L4", "gpus": 4}]},
        [
            "aws/us-east-1 L4:1",
            "aws/eu-west-3 L4:1",
            "scaleway/fr-par L4:1",
            "gcp/europe-west6 L4:1",
        ],
    ),
    Pools(
        "in a limited region, each accelerator count keeps its own pool",
        _workload(resources={"accelerators": ["L4:1", "L4:8"]}),
        {"capacity": [{"provider": "aws", "region": "eu-west-3", "accelerator": "L4", "gpus": 4}]},
        [
            "aws/us-east-1 L4:1",
            "aws/eu-west-3 L4:1",
            "scaleway/fr-par L4:1",
            "gcp/europe-west6 L4:1",
            "aws/eu-west-3 L4:8",
        ],
    ),
    Pools(
        "a service that must spread over two countries keeps a pool per country",
        _workload(**SERVICE, spread={"min_countries": 2}),
        {},
        [
            "aws/us-east-1 L4:1",
            "aws/eu-west-3 L4:1",
            "scaleway/fr-par L4:1",
            "gcp/europe-west6 L4:1",
        ],
    ),
    Pools(
        "the fleet's default spread counts as the service's own",
        _workload(**SERVICE),
        {"spread": {"min_countries": 2}},
        [
            "aws/us-east-1 L4:1",
            "aws/eu-west-3 L4:1",
            "scaleway/fr-par L4:1",
            "gcp/europe-west6 L4:1",
        ],
    ),
    Pools(
        "a service free to stay in one country needs no pool per country",
        _workload(**SERVICE, spread={"min_countries": 1, "min_providers": 2}),
        {},
        ["aws/us-east-1 L4:1", "scaleway/fr-par L4:1", "gcp/europe-west6 L4:1"],
    ),
    Pools(
        "a single replica cannot spread: the fleet's country rule does not split its pools",
        _workload(),
        {"spread": {"min_countries": 2}},
        ["aws/us-east-1 L4:1", "scaleway/fr-par L4:1", "gcp/europe-west6 L4:1"],
    ),
    Pools(
        "three countries asked: still one pool per country, not more",
        _workload(kind="inference", replicas=3, spread={"min_countries": 3}),
        {},
        [
            "aws/us-east-1 L4:1",
            "aws/eu-west-3 L4:1",
            "scaleway/fr-par L4:1",
            "gcp/europe-west6 L4:1",
        ],
    ),
]


def _pool(p: Placement) -> str:
    return f"{p.offer.provider}/{p.offer.region} L4:{p.offer.accelerator_count:g}"


@pytest.mark.parametrize("case", POOLS, ids=[c.name for c in POOLS])
def test_pools_a_workload_may_use(tiny: Planner, case: Pools) -> None:
    (found,) = candidates(tiny, _fleet(case.workload, **case.fleet))
    assert [_pool(o.placement) for o in found.options] == case.pools
    assert found.rejections == ()  # the reasons are gathered only for unplaceable workloads


# -- what a pool costs ------------------------------------------------------------


def test_a_pool_is_priced_for_the_workloads_own_duration_and_nodes(tiny: Planner) -> None:
    """scaleway: 2 EUR per node-hour, 2 nodes, 10 hours: 40 EUR, 60 USD at 1.5."""
    workload = _workload(
        resources={"accelerators": "L4:1", "nodes": 2}, constraints={"providers": ["scaleway"]}
    )
    (found,) = candidates(tiny, _fleet(workload))
    (option,) = found.options
    assert (found.units, found.hours) == (1, Decimal(10))
    assert option.placement.hours == Decimal(10)
    assert option.placement.total_cost == Decimal(40)  # offer currency
    assert option.placement.currency == "EUR"
    assert option.placement.comparison_total == Decimal(60)
    assert option.cost == Decimal(60)
    assert option.gpus == 2  # 1 GPU per node x 2 nodes
    assert option.gpu_hours == Decimal(20)  # 2 GPUs x 10 hours


def test_without_a_duration_a_workload_runs_the_whole_horizon(tiny: Planner) -> None:
    """December 2026: 31 days, 744 hours at 1 USD (aws/us-east-1)."""
    workload = _workload(constraints={"providers": ["aws"]})
    del workload["duration_hours"]
    (found,) = candidates(tiny, _fleet(workload))
    assert found.hours == Decimal(744)
    assert [(o.cost, o.gpu_hours) for o in found.options] == [(Decimal(744), Decimal(744))]


class CountingPlanner(Planner):
    """The planner, counting the engine calls the fleet makes."""

    def __init__(self, planner: Planner) -> None:
        super().__init__(planner.snapshot, planner.policy)
        self.asked: list[PlacementRequest] = []

    def options(self, request: PlacementRequest) -> list[Placement]:
        self.asked.append(request)
        return super().options(request)


def test_workloads_asking_for_the_same_thing_share_one_engine_call(tiny: Planner) -> None:
    """Three names, three durations, one shape: one call, each priced for its own hours."""
    counting = CountingPlanner(tiny)
    spec = _fleet(
        _workload("a", duration_hours=1),
        _workload("b", duration_hours=5),
        _workload("c", duration_hours=10),
        _workload("d", resources={"accelerators": "L4:8"}),
    )
    found = candidates(counting, spec)
    assert len(counting.asked) == 2  # L4:1 once, L4:8 once
    cheapest = {c.workload.name: c.options[0].cost for c in found}
    assert cheapest == {"a": Decimal(1), "b": Decimal(5), "c": Decimal(10), "d": Decimal(80)}


def test_an_unplaceable_workload_carries_the_reasons_from_the_engine(tiny: Planner) -> None:
    """No site in Germany: the five L4:1 rows fail the country rule, the L4:8 row the
    hardware check."""
    workload = _workload(constraints={"countries": ["DE"]})
    (found,) = candidates(tiny, _fleet(workload))
    assert found.options == ()
    assert [(r.reason, r.plugin, r.count) for r in found.rejections] == [
        (Reason.USER_COUNTRY, "countries", 5),
        (Reason.HARDWARE, "hardware", 1),
    ]


# -- names the fleet file uses ---------------------------------------------------


@dataclass(frozen=True)
class Misspelt:
    name: str
    fleet: dict[str, Any]
    where: str
    kind: str
    misspelt: str
    text: str = ""  # more of the message, when the field alone does not say it all


VALID_CAPACITY = {"provider": "aws", "accelerator": "L4", "gpus": 4}
COMMITMENT = {"amount": 100, "period": HORIZON}
MISSPELT = [
    Misspelt(
        "a capacity limit's provider",
        {"capacity": [VALID_CAPACITY, {**VALID_CAPACITY, "provider": "scalewya"}]},
        "fleet f: capacity[1].provider",
        "provider",
        "scalewya",
    ),
    Misspelt(
        "a capacity limit's region, among that provider's regions",
        {"capacity": [VALID_CAPACITY, {**VALID_CAPACITY, "region": "eu-west-9"}]},
        "fleet f: capacity[1].region",
        "region",
        "eu-west-9",
        "unknown region eu-west-9 at aws",
    ),
    Misspelt(
        "a region of another provider",
        {"capacity": [{**VALID_CAPACITY, "provider": "gcp", "region": "us-east-1"}]},
        "fleet f: capacity[0].region",
        "region",
        "us-east-1",
        "(known regions at gcp: europe-west6)",
    ),
    Misspelt(
        "a commitment's provider",
        {
            "commitments": [
                {**COMMITMENT, "provider": "aws"},
                {**COMMITMENT, "provider": "ovh"},
            ]
        },
        "fleet f: commitments[1].provider",
        "provider",
        "ovh",
    ),
    Misspelt(
        "a provider named by the concentration rule",
        {"concentration": {"max_share": 0.5, "providers": {"aws": 0.6, "azur": 0.6}}},
        "fleet f: concentration.providers",
        "provider",
        "azur",
    ),
]


@pytest.mark.parametrize("case", MISSPELT, ids=[c.name for c in MISSPELT])
def test_a_misspelt_name_in_the_fleet_names_its_field(tiny: Planner, case: Misspelt) -> None:
    with pytest.raises(UnknownNameError) as raised:
        plan_fleet(tiny, _fleet(_workload(), **case.fleet), solver="greedy")
    err = raised.value
    assert (err.where, err.kind, err.name) == (case.where, case.kind, case.misspelt)
    assert str(err).startswith(f"{case.where}: unknown {case.kind} {case.misspelt}")
    assert case.text in str(err)


@pytest.mark.parametrize("field", ["providers", "exclude_providers"])
def test_a_misspelt_provider_in_a_workloads_constraints_names_the_workload(
    tiny: Planner, field: str
) -> None:
    spec = _fleet(_workload(), _workload("second", constraints={field: ["aws", "lamda"]}))
    with pytest.raises(UnknownNameError) as raised:
        plan_fleet(tiny, spec, solver="greedy")
    err = raised.value
    assert (err.where, err.name) == (f"fleet f: workload second: constraints.{field}", "lamda")


def test_names_the_catalog_knows_pass(tiny: Planner) -> None:
    """Provider-wide and regional limits, a commitment, a concentration rule, constraints."""
    spec = _fleet(
        _workload(constraints={"providers": ["aws", "gcp"], "exclude_providers": ["scaleway"]}),
        capacity=[VALID_CAPACITY, {**VALID_CAPACITY, "region": "eu-west-3"}],
        commitments=[{**COMMITMENT, "provider": "gcp"}],
        concentration={"max_share": 1, "providers": {"aws": 1}},
    )
    plan = plan_fleet(tiny, spec, solver="greedy")
    assert plan.feasible
    assert [(a.workload, a.option.provider, a.option.region) for a in plan.assignments] == [
        ("w", "aws", "us-east-1")
    ]
