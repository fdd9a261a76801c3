"""What each filter says when it turns an offer down: reason, filter name and message.

``explain`` runs every filter on one offer, so each case lists all the filters
that say no, in chain order. The catalog is made up (prices per node and hour),
and every message below is written from the rows, not read from the engine:

==========================  =======  ======  ============================
offer                       country  GPUs    price
==========================  =======  ======  ============================
aws/us-east-1/i-1           US       L4:1    1 USD
aws/eu-west-3/i-1           FR       L4:1    spot only, 1 USD
aws/eu-west-3/i-2           FR       L4:1    not sold
scaleway/fr-par/i-1         FR       L4:1    2 EUR = 3 USD
hyperstack/NORWAY-1/i-1     NO       L4:1    1,234.50 USD
seeweb/-/i-1 (no region)    unknown  L4:1    1 USD
gcp/europe-west6/i-8        CH       H100:8  10 USD
gcp/europe-west6/i-9        CH       none    1 USD
==========================  =======  ======  ============================
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
    AcceleratorRequest,
    CatalogSnapshot,
    Reason,
    Rejection,
)
from archipel.placement import PlacementRequest, Planner
from archipel.policy import Policy

SITES: dict[tuple[str, str], str | None] = {
    ("aws", "us-east-1"): "US",
    ("aws", "eu-west-3"): "FR",
    ("scaleway", "fr-par"): "FR",
    ("hyperstack", "NORWAY-1"): "NO",
    ("seeweb", ""): None,
    ("gcp", "europe-west6"): "CH",
}
RATES = {"USD": Decimal(1), "EUR": Decimal("1.5")}


def _row(
    key: str,
    gpus: str = "L4:1",
    price: Decimal | None = Decimal(1),
    spot: Decimal | None = None,
    currency: str = "USD",
) -> OfferRow:
    provider, region, instance = key.split("/")
    model, count = gpus.split(":")
    return OfferRow(
        provider=provider,
        region="" if region == "-" else region,
        zone="z-a",
        instance_type=instance,
        accelerator=model,
        accelerator_count=float(count),
        gpu_memory_mib=0,
        vcpus=None,
        memory_gib=None,
        price=MISSING if price is None else int(price * NANO),
        spot_price=MISSING if spot is None else int(spot * NANO),
        currency=currency,
        source="test",
    )


ROWS = [
    _row("aws/us-east-1/i-1"),
    _row("aws/eu-west-3/i-1", price=None, spot=Decimal(1)),
    _row("aws/eu-west-3/i-2", price=None),
    _row("scaleway/fr-par/i-1", price=Decimal(2), currency="EUR"),
    _row("hyperstack/NORWAY-1/i-1", price=Decimal("1234.5")),
    _row("seeweb/-/i-1"),
    _row("gcp/europe-west6/i-8", gpus="H100:8", price=Decimal(10)),
    _row("gcp/europe-west6/i-9", gpus=":0"),
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


@dataclass(frozen=True)
class Case:
    name: str
    request: dict[str, Any]  # PlacementRequest fields besides accelerators and data class
    offer: str
    rejections: list[tuple[Reason, str, str]]
    accelerators: tuple[str, ...] = ("L4:1",)


EU_HINT = " (EU is the 27 member states; write EEA to include IS, LI and NO)"
CASES = [
    Case(
        "another accelerator model: both requested models are named",
        {},
        "gcp/europe-west6/i-8",
        [
            (
                Reason.HARDWARE,
                "hardware",
                "gcp/europe-west6/i-8 has 8x H100; the request needs L4:1 or L4:8",
            )
        ],
        accelerators=("L4:1", "L4:8"),
    ),
    Case(
        "an offer without accelerator says so, with no count",
        {},
        "gcp/europe-west6/i-9",
        [
            (
                Reason.HARDWARE,
                "hardware",
                "gcp/europe-west6/i-9 has no accelerator; the request needs L4:1",
            )
        ],
    ),
    Case(
        "a spot-only offer, spot not tolerated",
        {},
        "aws/eu-west-3/i-1",
        [
            (
                Reason.NOT_SOLD,
                "market",
                "aws/eu-west-3/i-1 has no price on demand (spot not allowed)",
            )
        ],
    ),
    Case("a spot-only offer, spot tolerated", {"spot": True}, "aws/eu-west-3/i-1", []),
    Case(
        "an offer sold in no market, spot tolerated",
        {"spot": True},
        "aws/eu-west-3/i-2",
        [(Reason.NOT_SOLD, "market", "aws/eu-west-3/i-2 has no price on demand or spot")],
    ),
    Case(
        "a country outside the one named",
        {"countries": ("FR",)},
        "hyperstack/NORWAY-1/i-1",
        [(Reason.USER_COUNTRY, "countries", "hyperstack/NORWAY-1 is in NO; the request wants FR")],
    ),
    Case(
        "an EEA country when the request says EU: the hint names EEA",
        {"countries": ("EU",)},
        "hyperstack/NORWAY-1/i-1",
        [
            (
                Reason.USER_COUNTRY,
                "countries",
                f"hyperstack/NORWAY-1 is in NO; the request wants EU{EU_HINT}",
            )
        ],
    ),
    Case(
        "several countries are listed as written",
        {"countries": ("US", "EU")},
        "hyperstack/NORWAY-1/i-1",
        [
            (
                Reason.USER_COUNTRY,
                "countries",
                f"hyperstack/NORWAY-1 is in NO; the request wants US,EU{EU_HINT}",
            )
        ],
    ),
    Case(
        "a non-EEA country when the request says EU: no hint",
        {"countries": ("EU",)},
        "gcp/europe-west6/i-9",
        [
            (
                Reason.HARDWARE,
                "hardware",
                "gcp/europe-west6/i-9 has no accelerator; the request needs L4:1",
            ),
            (Reason.USER_COUNTRY, "countries", "gcp/europe-west6 is in CH; the request wants EU"),
        ],
    ),
    Case(
        "a site with no region and no known country",
        {"countries": ("FR",)},
        "seeweb/-/i-1",
        [(Reason.USER_COUNTRY, "countries", "seeweb/-: country unknown; the request wants FR")],
    ),
    Case("the country named", {"countries": ("EU",)}, "scaleway/fr-par/i-1", []),
    Case(
        "an excluded provider",
        {"exclude_providers": ("aws",)},
        "aws/us-east-1/i-1",
        [
            (
                Reason.USER_EXCLUDED,
                "providers",
                "aws/us-east-1: provider aws excluded by the request",
            )
        ],
    ),
    Case(
        "an excluded provider at a site with no region",
        {"exclude_providers": ("seeweb",)},
        "seeweb/-/i-1",
        [(Reason.USER_EXCLUDED, "providers", "seeweb/-: provider seeweb excluded by the request")],
    ),
    Case(
        "a provider outside those allowed: the allowed ones, sorted",
        {"providers": ("scaleway", "gcp")},
        "aws/us-east-1/i-1",
        [
            (
                Reason.USER_PROVIDER,
                "providers",
                "aws/us-east-1: the request allows only gcp, scaleway",
            )
        ],
    ),
    Case(
        "allowed and excluded at once: the exclusion is the reason",
        {"providers": ("aws",), "exclude_providers": ("aws",)},
        "aws/us-east-1/i-1",
        [
            (
                Reason.USER_EXCLUDED,
                "providers",
                "aws/us-east-1: provider aws excluded by the request",
            )
        ],
    ),
    Case("a provider allowed", {"providers": ("aws",)}, "aws/us-east-1/i-1", []),
    Case(
        "over a whole cap: the cap keeps one decimal, the price two and a thousands comma",
        {"max_price_per_hour": Decimal(10)},
        "hyperstack/NORWAY-1/i-1",
        [
            (
                Reason.OVER_BUDGET,
                "budget",
                "hyperstack/NORWAY-1/i-1 costs 1,234.50 USD/h; the request allows at most "
                "10.0 USD/h",
            )
        ],
    ),
    Case(
        "over a cap with decimals: the cap as written, without trailing zeros",
        {"max_price_per_hour": Decimal("2.50")},
        "scaleway/fr-par/i-1",
        [
            (
                Reason.OVER_BUDGET,
                "budget",
                "scaleway/fr-par/i-1 costs 3.00 USD/h; the request allows at most 2.5 USD/h",
            )
        ],
    ),
    Case(
        "the cap is for all nodes",
        {"max_price_per_hour": Decimal("1.5"), "nodes": 2},
        "aws/us-east-1/i-1",
        [
            (
                Reason.OVER_BUDGET,
                "budget",
                "aws/us-east-1/i-1 costs 2.00 USD/h; the request allows at most 1.5 USD/h",
            )
        ],
    ),
    Case("exactly at the cap", {"max_price_per_hour": Decimal(3)}, "scaleway/fr-par/i-1", []),
    Case(
        "every filter that says no is listed, in chain order",
        {
            "countries": ("FR",),
            "exclude_providers": ("hyperstack",),
            "max_price_per_hour": Decimal(1000),
        },
        "hyperstack/NORWAY-1/i-1",
        [
            (
                Reason.USER_COUNTRY,
                "countries",
                "hyperstack/NORWAY-1 is in NO; the request wants FR",
            ),
            (
                Reason.USER_EXCLUDED,
                "providers",
                "hyperstack/NORWAY-1: provider hyperstack excluded by the request",
            ),
            (
                Reason.OVER_BUDGET,
                "budget",
                "hyperstack/NORWAY-1/i-1 costs 1,234.50 USD/h; the request allows at most "
                "1000.0 USD/h",
            ),
        ],
    ),
]


def _accelerators(specs: tuple[str, ...]) -> tuple[AcceleratorRequest, ...]:
    return tuple(AcceleratorRequest(m, float(c)) for m, c in (s.split(":") for s in specs))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_filter_says_why_it_turns_an_offer_down(tiny: Planner, case: Case) -> None:
    request = PlacementRequest(
        accelerators=_accelerators(case.accelerators), data_class="public", **case.request
    )
    (verdict,) = tiny.explain(request, case.offer)
    assert verdict.rejections == tuple(Rejection(*r) for r in case.rejections)
    assert (verdict.rank is None) == bool(case.rejections)


def test_a_plan_counts_each_offer_under_the_first_filter_that_turns_it_down(
    tiny: Planner,
) -> None:
    """L4:1 on demand in FR or NO, not scaleway: of the six L4:1 offers, two are not sold
    on demand, two are outside FR/NO (US, unknown), scaleway is excluded, and
    hyperstack is left. The two other offers are another model and no accelerator."""
    request = PlacementRequest(
        accelerators=_accelerators(("L4:1",)),
        data_class="public",
        countries=("FR", "NO"),
        exclude_providers=("scaleway",),
    )
    plan = tiny.plan(request)
    assert [(r.reason, r.plugin, r.count) for r in plan.rejections] == [
        (Reason.HARDWARE, "hardware", 2),
        (Reason.NOT_SOLD, "market", 2),
        (Reason.USER_COUNTRY, "countries", 2),
        (Reason.USER_EXCLUDED, "providers", 1),
    ]
    assert [p.offer.provider for p in plan.placements] == ["hyperstack"]
