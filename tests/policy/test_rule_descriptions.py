"""What ``policy show`` and ``policy check`` say each rule requires, in plain words."""

from __future__ import annotations

import pytest

from archipel.policy import load_policy_text


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        pytest.param(
            "vetted_provider",
            "the provider has a registry entry and is not a peer-to-peer marketplace",
            id="vetted",
        ),
        pytest.param("{certification: iso27001}", "the provider holds ISO 27001", id="iso27001"),
        pytest.param("{certification: bsi_c5}", "the provider holds BSI C5", id="bsi_c5"),
        pytest.param("{certification: hds}", "the provider holds HDS", id="hds"),
        pytest.param(
            "{secnumcloud: qualified}",
            "the provider holds a SecNumCloud qualification",
            id="secnumcloud qualified",
        ),
        pytest.param(
            "{secnumcloud: in_progress}",
            "the provider's SecNumCloud qualification is in progress",
            id="secnumcloud in progress",
        ),
        pytest.param("{cloud_act_exposure: ['no']}", "CLOUD Act exposure: no", id="cloud act no"),
        pytest.param(
            "{cloud_act_exposure: ['no', 'yes', unclear]}",
            "CLOUD Act exposure: yes or unclear or no",
            id="cloud act: in the registry's order, not as written",
        ),
        pytest.param(
            "{site_in: [eu_eea, adequacy]}",
            "the site is in the EU/EEA or a country with an EU adequacy decision",
            id="groups",
        ),
        pytest.param(
            "{site_in: [EU, adequacy_partial]}",
            "the site is in the EU or a country with a partial EU adequacy decision",
            id="groups in any case",
        ),
        pytest.param("{site_in: [ch, FR]}", "the site is in CH or FR", id="country codes"),
        pytest.param(
            "{providers: {allow: [scaleway, aws]}}",
            "only the providers aws, scaleway",
            id="allow list, sorted",
        ),
        pytest.param("{providers: {allow: []}}", "only the providers (none)", id="empty allow"),
        pytest.param(
            "{providers: {deny: [vast, hyperbolic]}}",
            "never the providers hyperbolic, vast",
            id="deny list, sorted",
        ),
        pytest.param(
            "{providers: {allow: [aws], deny: [vast]}}",
            "only the providers aws; never the providers vast",
            id="both lists",
        ),
        pytest.param("{providers: {}}", "any provider", id="no list"),
    ],
)
def test_each_rule_describes_what_it_requires(rule: str, words: str) -> None:
    policy = load_policy_text(f"name: p\ndata_classes:\n  c: {{rules: [{rule}]}}\n")
    (only,) = policy.data_class("c").rules
    assert only.describe() == words
