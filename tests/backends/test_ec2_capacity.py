"""EC2 sites in a capacity reservation or a Capacity Block for ML: what the launch asks
for, which combinations are refused, and health following the reservation's state.

moto accepts RunInstances with a capacity reservation target and the ``capacity-block``
market type but keeps neither (and has no capacity reservations at all), so the tests
assert on the RunInstances request the emulator received, and answer
``DescribeCapacityReservations`` with botocore's Stubber.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.aws_emulator import BUCKET, REGION, Emulated, make_site, plain

from archipel.backends import AttemptState, Ec2Backend, Ec2Config, LaunchRequest

from .contract import new_id

RESERVATION = "cr-0123456789abcdef0"


def _request(a: str) -> LaunchRequest:
    return LaunchRequest(a, ["python", "train.py"], {"ARCHIPEL_RUN_ID": "r-1"})


@pytest.mark.parametrize(
    ("options", "market"),
    [
        pytest.param({"capacity_reservation": RESERVATION}, None, id="on-demand-reservation"),
        pytest.param(
            {"capacity_reservation": RESERVATION, "market": "capacity-block"},
            {"MarketType": "capacity-block"},
            id="capacity-block",
        ),
    ],
)
def test_a_launch_into_a_reservation_names_it(
    site: Emulated, moto_url: str, options: dict[str, Any], market: dict[str, str] | None
) -> None:
    reserved = make_site(moto_url, site.backend.state_dir / "reserved", **options)
    a = new_id()
    assert reserved.backend.launch(_request(a)).ok
    sent = reserved.ec2.sent["run_instances"]  # as the emulator received it
    assert sent["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": RESERVATION}
    }
    assert sent.get("InstanceMarketOptions") == market
    assert reserved.backend.observe([a])[a].state is AttemptState.RUNNING
    reserved.backend.cancel(a)
    assert reserved.instances("pending", "running") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"market": "capacity-block"}, "needs capacity_reservation", id="no-id"),
        pytest.param(
            {"market": "spot", "capacity_reservation": RESERVATION},
            "a spot site cannot launch into a capacity reservation",
            id="spot-in-a-reservation",
        ),
    ],
)
def test_a_market_and_reservation_that_cannot_go_together_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Ec2Config(REGION, "ami-03cf127a", "p5.48xlarge", f"s3://{BUCKET}", **options)


def _reservation(state: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "CapacityReservationId": RESERVATION,
        "State": state,
        "ReservationType": "capacity-block",
        "StartDate": datetime(2026, 12, 2, 11, 30, tzinfo=UTC),
        "EndDate": datetime(2026, 12, 9, 11, 30, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("answer", "healthy", "says"),
    [
        pytest.param([_reservation("active")], True, None, id="active"),
        pytest.param(
            [_reservation("scheduled")], False, "is scheduled (its window: 2026-12-02", id="early"
        ),
        pytest.param([_reservation("expired")], False, "is expired", id="late"),
        pytest.param([], False, "does not exist", id="gone"),
    ],
)
def test_a_reserved_site_is_healthy_only_while_its_reservation_is_active(
    tmp_path: Path, answer: list[dict[str, Any]], healthy: bool, says: str | None
) -> None:
    from botocore.stub import Stubber

    ec2, s3 = plain("ec2", "http://127.0.0.1:9"), plain("s3", "http://127.0.0.1:9")  # never sent
    config = Ec2Config(
        REGION,
        "ami-03cf127a",
        "p5.48xlarge",
        f"s3://{BUCKET}",
        market="capacity-block",
        capacity_reservation=RESERVATION,
    )
    clients = {"ec2": ec2, "s3": s3}
    backend = Ec2Backend("block", config, tmp_path, clients=clients.__getitem__)
    with Stubber(ec2) as stub:
        zone = {"ZoneName": f"{REGION}a", "State": "available"}
        stub.add_response("describe_availability_zones", {"AvailabilityZones": [zone]})
        offer = {"InstanceType": "p5.48xlarge", "LocationType": "region", "Location": REGION}
        stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [offer]})
        stub.add_response(
            "describe_capacity_reservations",
            {"CapacityReservations": answer},
            {"CapacityReservationIds": [RESERVATION]},
        )
        health = backend.health()
        stub.assert_no_pending_responses()
    assert health.healthy is healthy
    if says is not None:
        assert says in (health.reason or "")
