"""Named planning scenarios on the shipped catalog, and ``explain``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tests.facts import EEA, PROVIDER_FACTS

from archipel.core import (
    AcceleratorRequest,
    CatalogSnapshot,
    InputError,
    PolicyError,
    Reason,
    UnknownAcceleratorError,
)
from archipel.placement import PlacementRequest, Planner


def req(spec: str = "H100:8", **kw: object) -> PlacementRequest:
    model, count = spec.split(":")
    return PlacementRequest(accelerators=(AcceleratorRequest(model, float(count)),), **kw)  # type: ignore[arg-type]


def test_health_data_stays_in_the_eu_with_no_cloud_act_exposure(
    planner: Planner, snapshot: CatalogSnapshot
) -> None:
    plan = planner.plan(req("L40S:1", data_class="health"), top=20)
    assert plan.feasible
    for p in plan.placements:
        assert p.offer.country in EEA
        assert PROVIDER_FACTS[p.offer.provider][1] == "no"  # CLOUD Act exposure
    reasons = {r.reason for r in plan.rejections}
    assert {Reason.CLOUD_ACT, Reason.COUNTRY} <= reasons


def test_public_data_may_go_to_a_marketplace_but_internal_may_not(planner: Planner) -> None:
    public = planner.plan(req("RTX4090:1", data_class="public"), top=50)
    internal = planner.plan(req("RTX4090:1", data_class="internal"), top=50)
    assert any(p.offer.provider == "vast" for p in public.placements)
    assert all(p.offer.provider != "vast" for p in internal.placements)
    assert any(r.reason is Reason.MARKETPLACE for r in internal.rejections)


def test_spot_tolerance_prices_each_offer_at_its_cheaper_market(planner: Planner) -> None:
    on_demand = planner.plan(req("H100:8", data_class="public"), top=1)
    spot = planner.plan(req("H100:8", data_class="public", spot=True), top=1)
    assert spot.placements[0].comparison_total <= on_demand.placements[0].comparison_total


def test_nodes_and_hours_multiply_the_price_exactly(planner: Planner) -> None:
    plan = planner.plan(req("H100:8", data_class="internal", nodes=3, hours=Decimal("10.5")), top=1)
    (p,) = plan.placements
    assert p.total_cost == p.price_per_hour * 3 * Decimal("10.5")
    assert isinstance(p.total_cost, Decimal)


def test_infeasible_request_says_why(planner: Planner) -> None:
    plan = planner.plan(req("H100:8", data_class="sovereign"))
    assert not plan.feasible
    assert {r.reason for r in plan.rejections} >= {Reason.HARDWARE, Reason.CERTIFICATION}
    assert all(r.unresolvable for r in plan.rejections if r.plugin == "policy")


def test_user_constraints_are_resolvable_rejections(planner: Planner) -> None:
    plan = planner.plan(
        req(
            "H100:8",
            data_class="public",
            countries=("FR",),
            exclude_providers=("scaleway",),
            max_price_per_hour=Decimal(30),
        )
    )
    by_reason = {r.reason: r for r in plan.rejections}
    assert Reason.USER_COUNTRY in by_reason
    assert not by_reason[Reason.USER_COUNTRY].unresolvable


def test_explain_lists_every_reason_an_offer_lost(planner: Planner) -> None:
    (verdict, *_) = planner.explain(req("H100:8", data_class="health"), "aws/eu-west-2/p5.48xlarge")
    reasons = [r.reason for r in verdict.rejections]
    assert Reason.COUNTRY in reasons  # London is not in the EU/EEA
    assert Reason.CLOUD_ACT in reasons
    assert verdict.rank is None


def test_explain_ranks_a_feasible_offer_against_the_winner(planner: Planner) -> None:
    plan = planner.plan(req("H100:8", data_class="internal"), top=3)
    second = plan.placements[1].offer
    verdicts = planner.explain(req("H100:8", data_class="internal"), second.key)
    feasible = [v for v in verdicts if not v.rejections]
    assert feasible and all(v.rank is not None and v.rank >= 2 for v in feasible)
    assert feasible[0].best_total == plan.placements[0].comparison_total


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (req("H1000:8"), UnknownAcceleratorError, "H100"),
        (req(providers=("awz",)), InputError, "unknown provider awz"),
        (req(data_class="secret"), PolicyError, "unknown data class"),
    ],
    ids=["accelerator typo", "provider typo", "unknown data class"],
)
def test_bad_requests_raise_clear_errors(
    planner: Planner, request_: PlacementRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        planner.plan(request_)


def test_explain_an_unknown_offer(planner: Planner) -> None:
    with pytest.raises(InputError, match="no offer"):
        planner.explain(req(), "aws/eu-west-3/p99.large")
