"""The shipped data classes, rule by rule, on made-up providers and sites.

An unknown fact never satisfies a rule. The shipped classes name ``eu_eea``: the
EU member states plus Iceland, Liechtenstein and Norway.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import pytest
from tests.facts import EEA, EEA_NOT_EU, EU_MEMBER_STATES, NEVER_EU_OR_EEA

from archipel.catalog import load_jurisdictions, load_providers, load_snapshot
from archipel.core import (
    CloudActExposure,
    Jurisdictions,
    OfferClass,
    ProviderFacts,
    Reason,
)
from archipel.policy import Policy, evaluate_classes, load_policy_text

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


_snapshot = cache(load_snapshot)
SHIPPED_FACTS = {
    "fact tables": lambda: (load_providers()["self"], load_jurisdictions()),
    "shipped snapshot": lambda: (_snapshot().provider("self"), _snapshot().jurisdictions),
}


@pytest.mark.parametrize("source", list(SHIPPED_FACTS))
@pytest.mark.parametrize("country", ["DE", "FR", "NO"])
def test_own_infrastructure_is_never_health_grade_by_default(
    policy: Policy, source: str, country: str
) -> None:
    """The on-prem `self` provider's CLOUD Act exposure is unknown, so `health` refuses it.

    A site the user declares as their own may be run by anyone; unknown fails
    closed even in an EU country, until the user names the operator.
    """
    facts, law = SHIPPED_FACTS[source]()
    site = OfferClass("self", "lab", country)
    (failures,) = evaluate_classes(policy.data_class("health"), [site], lambda _: facts, law)
    assert [f.reason for f in failures] == [Reason.CLOUD_ACT]
    (internal,) = evaluate_classes(policy.data_class("internal"), [site], lambda _: facts, law)
    assert internal == ()


GROUP_SITES = [
    # (site_in group, country, allowed) against the independent tables of tests/facts.py
    *[("eu", c, True) for c in sorted(EU_MEMBER_STATES)],
    *[("eu", c, False) for c in sorted(EEA_NOT_EU | NEVER_EU_OR_EEA)],
    *[("eea", c, True) for c in sorted(EEA)],
    *[("eu_eea", c, True) for c in sorted(EEA_NOT_EU)],
    *[("eea", c, False) for c in sorted(NEVER_EU_OR_EEA)],
    *[("eu_eea", c, False) for c in sorted(NEVER_EU_OR_EEA)],
]


@pytest.mark.parametrize(
    ("group", "country", "allowed"),
    GROUP_SITES,
    ids=[f"{g} {'allows' if a else 'refuses'} {c}" for g, c, a in GROUP_SITES],
)
def test_site_in_groups_with_the_shipped_jurisdictions(
    group: str, country: str, allowed: bool
) -> None:
    law = _snapshot().jurisdictions
    policy = load_policy_text(f"name: t\ndata_classes:\n  c: {{rules: [{{site_in: [{group}]}}]}}\n")
    (failures,) = evaluate_classes(
        policy.data_class("c"), [OfferClass("eucloud", "r1", country)], lambda _: EU_CLOUD, law
    )
    assert (not failures) == allowed, failures


def test_site_message_names_the_places_in_words(policy: Policy) -> None:
    site = OfferClass("eucloud", "us-east-1", "US")
    (failures,) = evaluate_classes(policy.data_class("personal"), [site], lambda _: EU_CLOUD, LAW)
    assert [f.message for f in failures] == [
        "eucloud/us-east-1 rejected: site in US; policy `personal` requires a site in "
        "the EU/EEA or a country with an EU adequacy decision"
    ]
