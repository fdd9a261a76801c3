"""Every rule's rejection, read in full: reason, rule name and the sentence a user reads.

A rejection is what a user acts on, so its words are part of the contract:
each case names a rule, a provider and a site, and the exact rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from archipel.core import (
    CloudActExposure,
    Jurisdictions,
    OfferClass,
    ProviderFacts,
    Reason,
    Rejection,
)
from archipel.policy import evaluate_classes, load_policy_text

LAW = Jurisdictions(
    eu=frozenset({"FR", "DE"}),
    eea_non_eu=frozenset({"NO"}),
    adequacy_full=frozenset({"CH"}),
    adequacy_partial=frozenset({"US"}),
)
GOOD = ProviderFacts(
    id="good",
    name="Good Cloud",
    marketplace=False,
    cloud_act=CloudActExposure.NO,
    secnumcloud="qualified",
    certifications={"iso27001": True, "bsi_c5": False, "hds": None},
)


@dataclass(frozen=True)
class Case:
    name: str
    rule: str  # the rule as written in a policy file
    provider: ProviderFacts
    site: OfferClass
    expected: Rejection | None


def _site(country: str | None, region: str = "r1", provider: str = "good") -> OfferClass:
    return OfferClass(provider, region, country)


CASES = [
    Case("vetted: a vetted provider passes", "vetted_provider", GOOD, _site("FR"), None),
    Case(
        "vetted: no registry entry",
        "vetted_provider",
        ProviderFacts(id="ghost", name="ghost", registered=False),
        _site("FR", provider="ghost"),
        Rejection(
            Reason.UNVETTED,
            "vetted_provider",
            "ghost/r1 rejected: provider 'ghost' has no registry entry; "
            "policy `c` requires a vetted provider",
        ),
    ),
    Case(
        "vetted: marketplace unknown",
        "vetted_provider",
        replace(GOOD, marketplace=None),
        _site("FR", region=""),
        Rejection(
            Reason.UNVETTED,
            "vetted_provider",
            "good/- rejected: the registry does not say whether good is a marketplace; "
            "policy `c` requires a vetted provider",
        ),
    ),
    Case(
        "vetted: a marketplace",
        "vetted_provider",
        replace(GOOD, marketplace=True),
        _site("FR"),
        Rejection(
            Reason.MARKETPLACE,
            "vetted_provider",
            "good/r1 rejected: Good Cloud is a peer-to-peer marketplace (hosts are not vetted); "
            "policy `c` forbids it",
        ),
    ),
    Case("certification held", "{certification: iso27001}", GOOD, _site("FR"), None),
    Case(
        "certification not held",
        "{certification: bsi_c5}",
        GOOD,
        _site("FR"),
        Rejection(
            Reason.CERTIFICATION,
            "certification",
            "good/r1 rejected: BSI C5 not held for good; policy `c` requires it",
        ),
    ),
    Case(
        "certification unknown",
        "{certification: hds}",
        GOOD,
        _site("FR"),
        Rejection(
            Reason.CERTIFICATION,
            "certification",
            "good/r1 rejected: HDS unknown in the registry for good; policy `c` requires it",
        ),
    ),
    Case("secnumcloud qualified", "{secnumcloud: qualified}", GOOD, _site("FR"), None),
    Case(
        "secnumcloud only in progress",
        "{secnumcloud: qualified}",
        replace(GOOD, secnumcloud="in_progress"),
        _site("FR"),
        Rejection(
            Reason.CERTIFICATION,
            "secnumcloud",
            "good/r1 rejected: SecNumCloud status of good is in_progress; "
            "policy `c` requires qualified",
        ),
    ),
    Case(
        "secnumcloud unknown",
        "{secnumcloud: in_progress}",
        replace(GOOD, secnumcloud=None),
        _site("FR"),
        Rejection(
            Reason.CERTIFICATION,
            "secnumcloud",
            "good/r1 rejected: SecNumCloud status of good is unknown; "
            "policy `c` requires in_progress",
        ),
    ),
    Case("cloud act allowed", "{cloud_act_exposure: ['no', unclear]}", GOOD, _site("FR"), None),
    Case(
        "cloud act: yes",
        "{cloud_act_exposure: ['no', unclear]}",
        replace(GOOD, cloud_act=CloudActExposure.YES),
        _site("FR"),
        Rejection(
            Reason.CLOUD_ACT,
            "cloud_act_exposure",
            "good/r1 rejected: good is exposed to the US CLOUD Act; policy `c` allows only "
            "providers whose US CLOUD Act exposure is unclear or no",
        ),
    ),
    Case(
        "cloud act: via parent",
        "{cloud_act_exposure: 'no'}",
        replace(GOOD, cloud_act=CloudActExposure.VIA_PARENT),
        _site("FR"),
        Rejection(
            Reason.CLOUD_ACT,
            "cloud_act_exposure",
            "good/r1 rejected: good is exposed to the US CLOUD Act through its parent company; "
            "policy `c` allows only providers not exposed to the US CLOUD Act",
        ),
    ),
    Case(
        "cloud act: unclear",
        "{cloud_act_exposure: ['no']}",
        replace(GOOD, cloud_act=CloudActExposure.UNCLEAR),
        _site("FR"),
        Rejection(
            Reason.CLOUD_ACT,
            "cloud_act_exposure",
            "good/r1 rejected: whether good is exposed to the US CLOUD Act is unclear; "
            "policy `c` allows only providers not exposed to the US CLOUD Act",
        ),
    ),
    Case(
        "cloud act: unknown",
        "{cloud_act_exposure: ['no']}",
        replace(GOOD, cloud_act=None),
        _site("FR"),
        Rejection(
            Reason.CLOUD_ACT,
            "cloud_act_exposure",
            "good/r1 rejected: the registry does not say whether good is exposed to the US "
            "CLOUD Act; policy `c` allows only providers not exposed to the US CLOUD Act",
        ),
    ),
    Case(
        "cloud act: not exposed, when the rule wants exposed providers",
        "{cloud_act_exposure: ['yes', via-parent]}",
        GOOD,
        _site("FR"),
        Rejection(
            Reason.CLOUD_ACT,
            "cloud_act_exposure",
            "good/r1 rejected: good is not exposed to the US CLOUD Act; policy `c` allows "
            "only providers whose US CLOUD Act exposure is yes or via-parent",
        ),
    ),
    Case("site in a group", "{site_in: [eea]}", GOOD, _site("NO"), None),
    Case("site in a listed country", "{site_in: [eu, CH]}", GOOD, _site("CH"), None),
    Case("site in lower-case country", "{site_in: [ch]}", GOOD, _site("CH"), None),
    Case("site_in takes one name", "{site_in: adequacy}", GOOD, _site("CH"), None),
    Case(
        "site outside",
        "{site_in: [eu, adequacy]}",
        GOOD,
        _site("US"),
        Rejection(
            Reason.COUNTRY,
            "site_in",
            "good/r1 rejected: site in US; policy `c` requires a site in the EU or a country "
            "with an EU adequacy decision",
        ),
    ),
    Case(
        "site country unknown",
        "{site_in: [eu]}",
        GOOD,
        _site(None),
        Rejection(
            Reason.UNKNOWN_COUNTRY,
            "site_in",
            "good/r1 rejected: the country of this region is unknown; "
            "policy `c` requires a site in the EU",
        ),
    ),
    Case("provider allowed", "{providers: {allow: [good]}}", GOOD, _site("FR"), None),
    Case(
        "provider denied",
        "{providers: {deny: [good]}}",
        GOOD,
        _site("FR"),
        Rejection(
            Reason.PROVIDER_DENIED,
            "providers",
            "good/r1 rejected: provider good is denied by policy `c`",
        ),
    ),
    Case(
        "provider off the allow list",
        "{providers: {allow: [other]}}",
        GOOD,
        _site("FR"),
        Rejection(
            Reason.PROVIDER_DENIED,
            "providers",
            "good/r1 rejected: provider good is not on the allow list of policy `c`",
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_rule_rejects_with_its_reason_name_and_sentence(case: Case) -> None:
    policy = load_policy_text(f"name: p\ndata_classes:\n  c: {{rules: [{case.rule}]}}\n")
    (failures,) = evaluate_classes(
        policy.data_class("c"), [case.site], lambda _: case.provider, LAW
    )
    assert failures == (() if case.expected is None else (case.expected,))


def test_a_policy_wide_list_names_the_policy() -> None:
    policy = load_policy_text("name: acme\nproviders: {deny: [good]}\ndata_classes: {c: {}}\n")
    (failures,) = evaluate_classes(policy.data_class("c"), [_site("FR")], lambda _: GOOD, LAW)
    assert failures == (
        Rejection(
            Reason.PROVIDER_DENIED,
            "providers",
            "good/r1 rejected: provider good is denied by policy `acme`",
        ),
    )
