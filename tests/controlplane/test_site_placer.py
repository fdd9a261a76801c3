"""One engine call places a run on a site and explains every other site with a Reason."""

from __future__ import annotations

import pytest

from archipel.controlplane import SiteChoice, SitePlacer, SiteState
from archipel.core import CatalogSnapshot, Reason, parse_workload
from archipel.policy import Policy

from .conftest import SITES


def _train(data_class: str = "public") -> object:
    return parse_workload(
        {
            "name": "train",
            "kind": "training",
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": data_class},
            "run": {"command": ["python", "train.py"]},
        }
    )


# prices: virginia 0.5 (aws, US), paris 1 (scaleway, FR), frankfurt 2 (ionos, DE)
@pytest.mark.parametrize(
    ("data_class", "state", "site", "reasons", "waits"),
    [
        pytest.param("public", SiteState(), "virginia", {}, False, id="cheapest site"),
        pytest.param(
            "public",
            SiteState(down={"virginia": "virginia down (maintenance)"}),
            "paris",
            {"virginia": Reason.SITE_DOWN},
            False,
            id="cheapest down: next one",
        ),
        pytest.param(
            "public",
            SiteState(
                blocked={"virginia": "virginia blocked after failures"},
                full={"paris": "paris full (2 of 2 slots taken)"},
                spread={"frankfurt": "frankfurt kept off by spread.min_providers (2)"},
            ),
            None,
            {
                "virginia": Reason.SITE_BLOCKED,
                "paris": Reason.SITE_FULL,
                "frankfurt": Reason.SPREAD,
            },
            True,
            id="every site taken now: waits",
        ),
        pytest.param(
            "personal",
            SiteState(
                full={"paris": "paris full (2 of 2 slots taken)"},
                down={"frankfurt": "frankfurt down"},
            ),
            None,
            {
                "virginia": Reason.COUNTRY,
                "paris": Reason.SITE_FULL,
                "frankfurt": Reason.SITE_DOWN,
            },
            True,
            id="policy first, then the state of the sites",
        ),
        pytest.param(
            "personal",
            SiteState(blocked={"paris": "paris blocked", "frankfurt": "frankfurt blocked"}),
            None,
            {
                "virginia": Reason.COUNTRY,
                "paris": Reason.SITE_BLOCKED,
                "frankfurt": Reason.SITE_BLOCKED,
            },
            False,
            id="only blocked and forbidden sites: never",
        ),
    ],
)
def test_a_site_choice_names_the_site_and_a_reason_for_every_other(
    snapshot: CatalogSnapshot,
    policy: Policy,
    data_class: str,
    state: SiteState,
    site: str | None,
    reasons: dict[str, Reason],
    waits: bool,
) -> None:
    choice = SitePlacer(SITES, snapshot, policy).place(_train(data_class), state)  # type: ignore[arg-type]
    assert choice.site == site
    assert choice.plan is not None
    got = {r.offer.instance_type: r.rejection.reason for r in choice.plan.itemised}
    assert got == reasons
    assert choice.waits is waits
    assert [r.reason for r in choice.rejections] == [
        r.rejection.reason for r in choice.plan.itemised
    ]


def test_a_run_waiting_for_a_site_lists_each_sites_rejection(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    state = SiteState(
        full={"paris": "paris full (2 of 2 slots taken)"}, down={"frankfurt": "frankfurt down"}
    )
    choice = SitePlacer(SITES, snapshot, policy).place(_train("personal"), state)  # type: ignore[arg-type]
    text = choice.explain()
    assert "frankfurt down" in text and "paris full (2 of 2 slots taken)" in text
    assert (
        "aws/us-east-1 rejected: site in US" in text
    )  # the policy's reason, as `archipel plan --explain` gives it


def test_a_request_the_sites_cannot_plan_is_invalid_not_rejected(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    workload = parse_workload(
        {
            "name": "train",
            "kind": "training",
            "resources": {"accelerators": "H100:1"},
            "data": {"class": "public"},
            "run": {"command": ["python", "train.py"]},
        }
    )
    choice = SitePlacer(SITES, snapshot, policy).place(workload)
    assert choice == SiteChoice(None, None, (), choice.invalid)
    assert choice.invalid is not None and not choice.waits
    assert choice.explain().startswith("no declared site can take it: ")
