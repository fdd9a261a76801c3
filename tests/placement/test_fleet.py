"""Fleet planning: every plan respects every rule, its cost is recomputed exactly,
the MILP never loses to greedy, and infeasible fleets are explained."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.cli._config import load_fleet
from archipel.cli._documents import fleet_document
from archipel.core import CatalogSnapshot, FleetSpec, SolverError, parse_fleet
from archipel.placement import FleetPlan, PlacementRequest, Planner, ViolationFamily, plan_fleet

from .reference import satisfies

HORIZON = {"start": "2026-12-01", "end": "2027-01-01"}


def job(name: str, accels: list[str], cls: str = "internal", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kw.pop("kind", "training"),
        "resources": {"accelerators": accels, **kw.pop("resources", {})},
        "data": {"class": cls},
        **kw,
    }


def independent_check(snapshot: CatalogSnapshot, spec: FleetSpec, plan: FleetPlan) -> None:
    """Everything a feasible plan must satisfy, recomputed from its assignments."""
    workloads = {w.name: w for w in spec.workloads}
    units: dict[str, int] = defaultdict(int)
    gpus: dict[tuple[str, str, str], int] = defaultdict(int)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    gpuh: dict[str, Decimal] = defaultdict(Decimal)
    per_service: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    countries: dict[str, set[str]] = defaultdict(set)
    for a in plan.assignments:
        w = workloads[a.workload]
        offer = a.option.placement.offer
        request = PlacementRequest.from_workload(w).resolved(snapshot)
        assert satisfies(snapshot, offer, request), (a.workload, offer.key)  # policy + constraints
        units[a.workload] += a.units
        hours = spec.hours_of(w)
        price = a.option.placement.price_per_hour * snapshot.fx_rates[a.option.placement.currency]
        cost = price * w.resources.nodes * hours * a.units
        spend[offer.provider] += cost
        gpuh[offer.provider] += (
            Decimal(str(offer.accelerator_count)) * w.resources.nodes * hours * a.units
        )
        gpus[(offer.provider, offer.region, offer.accelerator)] += (
            int(offer.accelerator_count) * w.resources.nodes * a.units
        )
        per_service[a.workload][offer.provider] += a.units
        if offer.country:
            countries[a.workload].add(offer.country)
    assert all(units[w.name] == w.replicas for w in spec.workloads), "every unit placed"
    for limit in spec.capacity:
        used = sum(
            n
            for (p, r, m), n in gpus.items()
            if p == limit.provider
            and m == limit.accelerator
            and (limit.region is None or r == limit.region)
        )
        assert used <= limit.gpus, limit
    for w in spec.workloads:
        if w.replicas > 1:
            rule = spec.spread_of(w)
            assert len(per_service[w.name]) >= rule.min_providers, w.name
            if rule.min_countries > 1:  # known countries only; one is always met
                assert len(countries[w.name]) >= rule.min_countries, w.name
            for n in per_service[w.name].values():
                assert n <= rule.max_share_per_provider * w.replicas + 1e-9, w.name
    if spec.concentration is not None:
        measure = gpuh if spec.concentration.measure == "gpu_hours" else spend
        total = sum(measure.values(), Decimal(0))
        for p, v in measure.items():
            assert v <= Decimal(str(spec.concentration.share_for(p))) * total + Decimal("1e-6"), p
    shortfall = Decimal(0)
    for c in spec.commitments:
        due = c.due_in(spec.horizon) * snapshot.fx_rates[c.currency]
        shortfall += max(Decimal(0), due - spend.get(c.provider, Decimal(0)))
    usage = sum(spend.values(), Decimal(0))
    assert plan.account.usage == usage
    # the same sum in another order: equal up to Decimal's 28th significant digit
    # (what is due divides by the term, a fraction that does not end)
    assert abs(plan.account.shortfall - shortfall) <= Decimal("1e-12")
    assert abs(plan.account.total - (usage + shortfall)) <= Decimal("1e-12")


def assert_report_is_exact(plan: FleetPlan, requested_gap: float) -> None:
    """The solver report speaks of the plan given: its cost, and its gap to the bound."""
    s = plan.solver
    assert s.objective == plan.account.total
    assert s.bound is not None and s.gap is not None
    assert s.bound <= plan.account.total + Decimal("0.01")
    exact_gap = max(Decimal(0), (plan.account.total - s.bound) / plan.account.total)
    assert abs(Decimal(str(s.gap)) - exact_gap) <= Decimal("1e-6")
    if s.status == "optimal":
        assert exact_gap <= Decimal(str(requested_gap)) + Decimal("1e-6")


MODELS = ["H100:8", "H200:8", "A100-80GB:8", "L40S:1", "L4:1", "H100:1"]
CLASSES = ["public", "internal", "personal", "health"]
CAPPED = [
    ("hyperstack", "H100"),
    ("nebius", "H100"),
    ("nebius", "H200"),
    ("lambda", "H100"),
    ("oci", "A100-80GB"),
    ("azure", "A100-80GB"),
    ("seeweb", "L40S"),
    ("scaleway", "L40S"),
]


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 7))
    workloads = []
    for i in range(n):
        service = draw(st.booleans())
        replicas = draw(st.integers(2, 5)) if service else 1
        spread = None
        if service:
            spread = {
                "min_providers": draw(st.integers(1, min(2, replicas))),
                "max_share_per_provider": draw(st.sampled_from([0.5, 0.75, 1.0])),
            }
            if spread["max_share_per_provider"] * replicas < 1:
                spread["max_share_per_provider"] = 1.0
        workloads.append(
            job(
                f"w{i}",
                draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2, unique=True)),
                draw(st.sampled_from(CLASSES)),
                kind="inference" if service else "batch",
                resources={"nodes": draw(st.integers(1, 3)), "spot": draw(st.booleans())},
                duration_hours=draw(st.sampled_from([None, 24, 100])),
                replicas=replicas,
                **({"spread": spread} if spread else {}),
            )
        )
    capacity = [
        {"provider": p, "accelerator": m, "gpus": draw(st.sampled_from([8, 16, 64]))}
        for p, m in draw(st.lists(st.sampled_from(CAPPED), max_size=4, unique=True))
    ]
    commitments = [
        {
            "provider": p,
            # 500 is overspent by almost any fleet; 5,000,000 is never met
            "amount": draw(st.sampled_from([500, 50_000, 500_000, 5_000_000])),
            "currency": draw(st.sampled_from(["USD", "EUR"])),
            "spent": draw(st.sampled_from([0, 400])),
            "period": draw(
                st.sampled_from(
                    [
                        {"start": "2026-01-01", "end": "2028-01-01"},
                        HORIZON,  # due in full within the horizon
                    ]
                )
            ),
        }
        for p in draw(
            st.lists(
                st.sampled_from(["aws", "azure", "oci", "gcp", "scaleway", "ovhcloud", "nebius"]),
                max_size=3,
                unique=True,
            )
        )
    ]
    doc: dict[str, Any] = {
        "horizon": HORIZON,
        "workloads": workloads,
        "capacity": capacity,
        "commitments": commitments,
    }
    if draw(st.booleans()):
        doc["concentration"] = {
            "max_share": draw(st.sampled_from([0.5, 0.7])),
            "measure": draw(st.sampled_from(["gpu_hours", "spend"])),
        }
    return doc


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=fleets())
def test_milp_plans_respect_every_rule_and_never_lose_to_greedy(
    planner: Planner, doc: dict[str, Any]
) -> None:
    snapshot = planner.snapshot
    spec = parse_fleet(doc)
    milp = plan_fleet(planner, spec, "milp", time_limit=20, gap=1e-7)
    greedy = plan_fleet(planner, spec, "greedy")
    if milp.feasible:
        independent_check(snapshot, spec, milp)
        assert_report_is_exact(milp, requested_gap=1e-7)
        if greedy.feasible:
            independent_check(snapshot, spec, greedy)
            assert milp.account.total <= greedy.account.total * (1 + Decimal("1e-6"))
    else:
        assert milp.diagnosis or milp.unplaceable
        assert not greedy.feasible  # if greedy found a valid plan, the MILP would have too


def test_example_portfolio_binds_commitments_and_beats_greedy(
    planner: Planner, snapshot: CatalogSnapshot
) -> None:
    spec = load_fleet(Path(__file__).resolve().parents[2] / "examples/fleet/lab.yaml")
    milp = plan_fleet(planner, spec, "milp", time_limit=60, gap=0.01)
    greedy = plan_fleet(planner, spec, "greedy")
    assert milp.feasible
    independent_check(snapshot, spec, milp)
    assert milp.solver.gap is not None and milp.solver.gap <= 0.01
    assert milp.account.total < greedy.account.total
    assert greedy.account.shortfall > milp.account.shortfall
    assert not greedy.feasible and greedy.violations  # greedy breaks the concentration cap


def test_same_inputs_same_seed_give_byte_identical_json(planner: Planner) -> None:
    doc = {
        "horizon": HORIZON,
        "workloads": [
            job("a", ["H100:8"], "personal", resources={"nodes": 2}),
            job(
                "svc",
                ["H100:1", "L40S:1"],
                "health",
                kind="inference",
                replicas=3,
                spread={"min_providers": 2},
            ),
        ],
        "capacity": [{"provider": "nebius", "accelerator": "H100", "gpus": 8}],
        "commitments": [
            {
                "provider": "azure",
                "amount": 1_000_000,
                "period": {"start": "2026-01-01", "end": "2027-01-01"},
            }
        ],
    }
    plans = [plan_fleet(planner, parse_fleet(doc), seed=7) for _ in range(3)]
    runs = [json.dumps(fleet_document(plan, planner.snapshot)) for plan in plans]
    assert runs[0] == runs[1] == runs[2]
    # determinism is not correctness: the plan itself must also hold every rule
    assert plans[0].feasible
    independent_check(planner.snapshot, parse_fleet(doc), plans[0])


def test_capacity_shortage_is_explained_in_planner_terms(planner: Planner) -> None:
    doc = {
        "horizon": HORIZON,
        "workloads": [
            job(
                "gov-rag",
                ["H100:1"],
                "sovereign",
                kind="inference",
                replicas=12,
                spread={"min_providers": 1},
            )
        ],
        "capacity": [{"provider": "ovhcloud", "region": "GRA11", "accelerator": "H100", "gpus": 8}],
    }
    plan = plan_fleet(planner, parse_fleet(doc))
    assert not plan.feasible
    (why,) = [v for v in plan.diagnosis if v.family is ViolationFamily.CAPACITY]
    assert why.excess == 4
    assert why.message.startswith(
        "sovereign workloads need 12 H100 at ovhcloud/GRA11 but the capacity is 8 (short by 4 GPUs)"
    )


def test_spread_that_policy_makes_impossible_is_explained(planner: Planner) -> None:
    doc = {
        "horizon": HORIZON,
        "workloads": [
            job(
                "gov-rag",
                ["H100:1"],
                "sovereign",
                kind="inference",
                replicas=2,
                spread={"min_providers": 2},
            )
        ],
    }
    plan = plan_fleet(planner, parse_fleet(doc))
    assert not plan.feasible
    assert [v.subject for v in plan.diagnosis] == ["gov-rag: providers"]


def test_a_workload_nothing_can_host_is_reported_with_its_rejections(planner: Planner) -> None:
    doc = {"horizon": HORIZON, "workloads": [job("x", ["H100:8"], "sovereign")]}
    plan = plan_fleet(planner, parse_fleet(doc))
    assert not plan.feasible
    (c,) = plan.unplaceable
    assert c.workload.name == "x"
    assert {r.reason.value for r in c.rejections} >= {"certification"}


def test_commitment_pulls_work_to_the_committed_provider(planner: Planner) -> None:
    base = {
        "horizon": HORIZON,
        "workloads": [job("a", ["A100-80GB:8"], "public", resources={"nodes": 4})],
    }
    free = plan_fleet(planner, parse_fleet(base))
    committed = plan_fleet(
        planner,
        parse_fleet(
            {
                **base,
                "commitments": [
                    {
                        "provider": "oci",
                        "amount": 10_000_000,
                        "period": {"start": "2026-12-01", "end": "2027-01-01"},
                    }
                ],
            }
        ),
    )
    assert free.assignments[0].option.provider != "oci"
    assert committed.assignments[0].option.provider == "oci"


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_warm_start_read_back_is_never_called_optimal_at_the_solvers_price(
    planner: Planner, snapshot: CatalogSnapshot
) -> None:
    """highspy 1.16.0 reports the improved objective of a warm-started MIP with the
    warm start's columns (2% dearer here): the plan given is priced from its own
    assignment, and its gap is measured from that price."""
    spec = load_fleet(FIXTURES / "fleet/warm-start.yaml")
    plan = plan_fleet(planner, spec, "milp", time_limit=60, gap=0.01)
    assert plan.feasible
    independent_check(snapshot, spec, plan)
    assert_report_is_exact(plan, requested_gap=0.01)


class _Lying:
    """A solved HiGHS instance whose reported objective is ``by`` below its columns' cost."""

    def __init__(self, h: Any, by: float) -> None:
        self._h, self._by = h, by

    def getInfo(self) -> Any:  # noqa: N802 (highspy's name)
        info = self._h.getInfo()
        return SimpleNamespace(
            primal_solution_status=info.primal_solution_status,
            objective_function_value=info.objective_function_value - self._by,
            mip_dual_bound=info.mip_dual_bound,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._h, name)


@pytest.mark.parametrize(
    ("lies_when", "outcome"),
    [
        (lambda kw: kw.get("start") is not None, "re-solved cold"),
        (lambda kw: kw.get("integral", True) and not kw.get("fixed"), "refused"),
    ],
    ids=["only the warm-started solve lies", "every full MIP solve lies"],
)
def test_a_solution_whose_columns_miss_its_objective_is_re_solved_cold_or_refused(
    planner: Planner,
    snapshot: CatalogSnapshot,
    monkeypatch: pytest.MonkeyPatch,
    lies_when: Callable[[dict[str, Any]], bool],
    outcome: str,
) -> None:
    from archipel.placement import _fleet_milp

    real = _fleet_milp._Builder.solve
    calls: list[dict[str, Any]] = []

    def solve(self: Any, *args: Any, **kw: Any) -> Any:
        calls.append(kw)
        h = real(self, *args, **kw)
        return _Lying(h, by=5_000.0) if lies_when(kw) else h

    monkeypatch.setattr(_fleet_milp._Builder, "solve", solve)
    spec = load_fleet(FIXTURES / "fleet/warm-start.yaml")
    # a gap no incumbent of the fixed model meets: the full MIP always runs, warm-started
    if outcome == "refused":
        with pytest.raises(SolverError, match="fails its check"):
            plan_fleet(planner, spec, "milp", time_limit=60, gap=1e-9)
        return
    plan = plan_fleet(planner, spec, "milp", time_limit=60, gap=1e-9)
    assert [kw.get("start") is not None for kw in calls[2:]] == [True, False]
    assert plan.feasible
    independent_check(snapshot, spec, plan)
    assert plan.solver.objective == plan.account.total


def test_an_lp_relaxation_stopped_early_is_not_taken_as_a_bound(
    planner: Planner, snapshot: CatalogSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An LP cut short by the time limit holds a feasible point, whose cost bounds nothing."""
    import highspy

    from archipel.placement import _fleet_milp

    real = _fleet_milp._Builder.solve
    early: list[float] = []

    class Stopped:
        def __init__(self, h: Any) -> None:
            self._h = h

        def getModelStatus(self) -> Any:  # noqa: N802 (highspy's name)
            return highspy.HighsModelStatus.kTimeLimit

        def __getattr__(self, name: str) -> Any:
            return getattr(self._h, name)

    def solve(self: Any, time_limit: float, gap: float, seed: int, **kw: Any) -> Any:
        if kw.get("integral", True):
            return real(self, time_limit, gap, seed, **kw)
        # a feasible point, as an LP stopped early holds: the first plan a loose MIP finds
        h = real(self, time_limit, 0.5, seed)
        early.append(h.getInfo().objective_function_value)
        return Stopped(h)

    monkeypatch.setattr(_fleet_milp._Builder, "solve", solve)
    spec = load_fleet(FIXTURES / "fleet/warm-start.yaml")
    plan = plan_fleet(planner, spec, "milp", time_limit=60, gap=0.01)
    assert plan.feasible
    independent_check(snapshot, spec, plan)
    assert plan.solver.bound is not None
    assert abs(float(plan.solver.bound) - early[0]) > 1.0
    assert_report_is_exact(plan, requested_gap=0.01)  # the bound is the full MIP's own
