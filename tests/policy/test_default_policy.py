"""The shipped data classes, rule by rule, on made-up providers and sites.

An unknown fact never satisfies a rule; "EU" means EU/EEA member states.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from archipel.core import (
    CloudActExposure,
    Jurisdictions,
    OfferClass,
    ProviderFacts,
    Reason,
)
from archipel.policy import Policy, evaluate_classes

LAW = Jurisdictions(
    eu=frozenset({"FR", "DE", "IT", "FI", "NL", "SE"}),
    eea_non_eu=frozenset({"NO", "IS", "LI"}),
    adequacy_full=frozenset({"CH", "GB", "JP", "CA"}),
    adequacy_partial=frozenset({"US"}),
)

EU_CLOUD = ProviderFacts(
    id="eucloud",
    name="EU Cloud",
    kind="eu_cloud",
    marketplace=False,
    hq_country="FR",
    cloud_act=CloudActExposure.NO,
    secnumcloud="qualified",
    certifications={"iso27001": True, "bsi_c5": None, "hds": True},
)
US_HYPERSCALER = replace(
    EU_CLOUD,
    id="hyper",
    name="Hyper",
    kind="hyperscaler",
    hq_country="US",
    cloud_act=CloudActExposure.YES,
    secnumcloud="none",
)
MARKET = replace(
    EU_CLOUD,
    id="market",
    name="Market",
    kind="marketplace",
    marketplace=True,
    cloud_act=CloudActExposure.YES,
    secnumcloud="none",
)
UNKNOWNS = ProviderFacts(id="mystery", name="Mystery", kind="neocloud", marketplace=False)
UNREGISTERED = ProviderFacts(id="ghost", name="ghost", registered=False)


@dataclass(frozen=True)
class Case:
    name: str
    provider: ProviderFacts
    country: str | None
    allowed: set[str]  # data classes that accept this (provider, site)
    reasons: dict[str, Reason] = field(default_factory=dict)  # class -> first reason


CASES = [
    Case(
        "EU sovereign cloud in France",
        EU_CLOUD,
        "FR",
        {"public", "internal", "confidential", "personal", "health", "sovereign"},
    ),
    Case(
        "EU cloud in Norway (EEA, not EU)",
        EU_CLOUD,
        "NO",
        {"public", "internal", "confidential", "personal", "health", "sovereign"},
    ),
    Case(
        "EU cloud in Switzerland (adequacy, not EEA)",
        EU_CLOUD,
        "CH",
        {"public", "internal", "confidential", "personal"},
        {"health": Reason.COUNTRY, "sovereign": Reason.COUNTRY},
    ),
    Case(
        "EU cloud in the US (partial adequacy only)",
        EU_CLOUD,
        "US",
        {"public", "internal", "confidential"},
        {"personal": Reason.COUNTRY, "health": Reason.COUNTRY},
    ),
    Case(
        "US hyperscaler in Germany",
        US_HYPERSCALER,
        "DE",
        {"public", "internal", "confidential", "personal"},
        {"health": Reason.CLOUD_ACT, "sovereign": Reason.CERTIFICATION},
    ),
    Case(
        "marketplace in Germany",
        MARKET,
        "DE",
        {"public"},
        {
            "internal": Reason.MARKETPLACE,
            "personal": Reason.MARKETPLACE,
            "health": Reason.CLOUD_ACT,
        },
    ),
    Case(
        "unknown facts in Germany",
        UNKNOWNS,
        "DE",
        {"public", "internal", "personal"},
        {
            "confidential": Reason.CERTIFICATION,
            "health": Reason.CLOUD_ACT,
            "sovereign": Reason.CERTIFICATION,
        },
    ),
    Case(
        "EU cloud, country unknown",
        EU_CLOUD,
        None,
        {"public", "internal", "confidential"},
        {"personal": Reason.UNKNOWN_COUNTRY, "health": Reason.UNKNOWN_COUNTRY},
    ),
    Case(
        "no registry entry",
        UNREGISTERED,
        "FR",
        {"public"},
        {"internal": Reason.UNVETTED, "confidential": Reason.UNVETTED},
    ),
    Case(
        "marketplace host in Switzerland ('EU' continent, not EU)",
        MARKET,
        "CH",
        {"public"},
        {"health": Reason.COUNTRY},
    ),
]

CLASSES = ["public", "internal", "confidential", "personal", "health", "sovereign"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_default_data_classes(case: Case, policy: Policy) -> None:
    site = OfferClass(case.provider.id, "r1", case.country)
    for name in CLASSES:
        (failures,) = evaluate_classes(
            policy.data_class(name), [site], lambda _: case.provider, LAW
        )
        assert (not failures) == (name in case.allowed), (name, failures)
        if name in case.reasons:
            assert failures[0].reason is case.reasons[name], (name, failures)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_rejection_is_unresolvable_policy_data(case: Case, policy: Policy) -> None:
    site = OfferClass(case.provider.id, "r1", case.country)
    for name in CLASSES:
        (failures,) = evaluate_classes(
            policy.data_class(name), [site], lambda _: case.provider, LAW
        )
        for f in failures:
            assert f.unresolvable
            assert f.plugin
            assert case.provider.id in f.message
            assert f"`{name}`" in f.message or "`internal`" in f.message


def test_health_lists_every_failing_rule(policy: Policy) -> None:
    site = OfferClass("hyper", "us-east-1", "US")
    (failures,) = evaluate_classes(
        policy.data_class("health"), [site], lambda _: US_HYPERSCALER, LAW
    )
    assert [f.reason for f in failures] == [Reason.COUNTRY, Reason.CLOUD_ACT]


@pytest.mark.parametrize(
    ("exposure", "why"),
    [
        (CloudActExposure.YES, "hyper is exposed to the US CLOUD Act"),
        (
            CloudActExposure.VIA_PARENT,
            "hyper is exposed to the US CLOUD Act through its parent company",
        ),
        (CloudActExposure.UNCLEAR, "whether hyper is exposed to the US CLOUD Act is unclear"),
        (None, "the registry does not say whether hyper is exposed to the US CLOUD Act"),
    ],
    ids=["exposed", "via-parent", "unclear", "unknown"],
)
def test_cloud_act_message_reads_like_an_explanation(
    policy: Policy, exposure: CloudActExposure | None, why: str
) -> None:
    site = OfferClass("hyper", "eu-west-3", "FR")
    facts = replace(US_HYPERSCALER, cloud_act=exposure)
    (failures,) = evaluate_classes(policy.data_class("health"), [site], lambda _: facts, LAW)
    assert failures[0].message == (
        f"hyper/eu-west-3 rejected: {why}; "
        "policy `health` allows only providers not exposed to the US CLOUD Act"
    )


def test_site_message_names_the_places_in_words(policy: Policy) -> None:
    site = OfferClass("eucloud", "us-east-1", "US")
    (failures,) = evaluate_classes(policy.data_class("personal"), [site], lambda _: EU_CLOUD, LAW)
    assert [f.message for f in failures] == [
        "eucloud/us-east-1 rejected: site in US; policy `personal` requires a site in "
        "the EU/EEA or a country with an EU adequacy decision"
    ]
