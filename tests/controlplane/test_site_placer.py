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


# The default policy's classes, in its order, worked out from docs/policy.md and the
# registry's facts (tests/facts.py; IONOS: a German company, no CLOUD Act exposure, ISO
# 27001, no SecNumCloud): every class but `sovereign` (SecNumCloud qualified) may use the
# two EU sites; the US site takes neither personal data (no adequacy for a US site under
# this policy) nor health data (EU/EEA only, no CLOUD Act exposure).
EU_SITE = ("public", "internal", "confidential", "personal", "health")


@pytest.mark.parametrize(
    ("site", "classes"),
    [
        pytest.param("paris", EU_SITE, id="scaleway, FR"),
        pytest.param("frankfurt", EU_SITE, id="ionos, DE"),
        pytest.param("virginia", ("public", "internal", "confidential"), id="aws, US"),
    ],
)
def test_each_site_lists_the_data_classes_the_policy_lets_use_it(
    snapshot: CatalogSnapshot, policy: Policy, site: str, classes: tuple[str, ...]
) -> None:
    assert SitePlacer(SITES, snapshot, policy).data_classes()[site] == classes


def test_the_data_classes_a_site_allows_are_those_the_engine_places_there(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """The listing and a placement are the same verdict: a class may use a site exactly
    when a run of that class, with every other site down, is placed there."""
    placer = SitePlacer(SITES, snapshot, policy)
    for site, allowed in placer.data_classes().items():
        others = {s.name: "down" for s in SITES if s.name != site}
        for data_class in policy.data_classes:
            choice = placer.place(_train(data_class), SiteState(down=others))
            assert (choice.site == site) == (data_class in allowed), (site, data_class)
