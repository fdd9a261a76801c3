"""A bad policy file is refused with one sentence that names the place and the fix.

The messages are compared in full: they are what a user reads to repair the file.
"""

from __future__ import annotations

import pytest

from archipel.core import Jurisdictions, OfferClass, PolicyError, ProviderFacts, Reason, Rejection
from archipel.policy import default_policy, evaluate_classes, load_policy_text, parse_policy

RULE = "acme.yaml: data_classes.a.rules[0]: "
ERRORS = [
    (
        "unknown place",
        "{a: {rules: [{site_in: [Europe]}]}}",
        RULE + "'Europe' is neither a group (adequacy, adequacy_partial, eea, eu, eu_eea) "
        "nor an ISO 3166-1 alpha-2 country code",
    ),
    (
        "empty site_in",
        "{a: {rules: [{site_in: []}]}}",
        RULE + "site_in takes a list of groups or country codes",
    ),
    (
        "bare no",
        "{a: {rules: [{cloud_act_exposure: [no]}]}}",
        RULE + "cloud_act_exposure takes a list of yes, via-parent, unclear, no "
        "(quote `no`: YAML reads a bare no as false)",
    ),
    (
        "unknown certification",
        "{a: {rules: [{certification: soc2}]}}",
        RULE + "certification must be one of bsi_c5, hds, iso27001",
    ),
    (
        "unknown secnumcloud status",
        "{a: {rules: [{secnumcloud: 'yes'}]}}",
        RULE + "secnumcloud must be `qualified` or `in_progress`",
    ),
    (
        "providers not a mapping",
        "{a: {rules: [{providers: [x]}]}}",
        RULE + "providers takes {allow: [...], deny: [...]}",
    ),
    (
        "two keys in one rule",
        "{a: {rules: [{vetted: true, site_in: [eu]}]}}",
        RULE + "a rule is `vetted_provider` or a one-key mapping such as `site_in: [eu_eea]`, "
        "`certification: iso27001`, `secnumcloud: qualified`, `cloud_act_exposure: [no]`, "
        "`providers: {deny: [...]}`",
    ),
    ("unknown rule", "{a: {rules: [{magic: 1}]}}", RULE + "unknown rule 'magic'"),
    (
        "a cycle",
        "{a: {extends: b}, b: {extends: a}}",
        "acme.yaml: data class 'a' extends itself: a -> b -> a",
    ),
    (
        "unknown parent",
        "{a: {extends: zz}}",
        "acme.yaml: data class 'a' extends unknown class 'zz'",
    ),
    (
        "misspelt key",
        "{a: {rulez: []}}",
        "acme.yaml: invalid policy\n"
        "  - data_classes.a.rulez: unknown field; remove it or check its spelling",
    ),
]


@pytest.mark.parametrize(
    ("classes", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_a_bad_policy_is_refused_with_the_place_and_the_fix(classes: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(f"name: p\ndata_classes: {classes}", "acme.yaml")
    assert str(err.value) == message


def test_a_document_that_is_no_mapping() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("[1, 2]", "acme.yaml")
    assert str(err.value) == (
        "acme.yaml: invalid policy\n  - the document must be a mapping with data_classes"
    )


def test_text_that_is_no_yaml_names_the_file() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("data_classes: {a: [", "acme.yaml")
    assert str(err.value).startswith("acme.yaml: not valid YAML: ")


def test_an_unknown_class_lists_the_known_ones() -> None:
    with pytest.raises(PolicyError) as err:
        default_policy().data_class("secret")
    assert str(err.value) == (
        "unknown data class 'secret' in policy `default` (known data classes: confidential, "
        "health, internal, personal, public, sovereign; `archipel policy show` describes them)"
    )


def test_the_default_policy_is_named_and_described() -> None:
    policy = default_policy()
    assert policy.name == "default"
    health = policy.data_class("health")
    assert health.name == "health"
    assert health.description.startswith("The site is in the EU/EEA")
    assert [r.name for r in health.rules] == ["site_in", "cloud_act_exposure"]


def test_a_policy_wide_allow_list_is_a_rule_of_every_class() -> None:
    policy = load_policy_text(
        "name: acme\nproviders: {allow: [ovhcloud]}\ndata_classes: {a: {}, b: {rules: [vetted_provider]}}"
    )
    for name in ("a", "b"):
        first = policy.data_class(name).rules[0]
        assert first.name == "providers"


def test_without_a_file_name_the_message_says_policy() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("[1]")
    assert str(err.value) == (
        "<policy>: invalid policy\n  - the document must be a mapping with data_classes"
    )
    with pytest.raises(PolicyError) as err:
        parse_policy([1])
    assert str(err.value) == (
        "<policy>: invalid policy\n  - the document must be a mapping with data_classes"
    )


def test_every_problem_of_a_document_is_listed() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("name: p\nextra: 1\ndata_classes: {a: {rulez: []}}", "acme.yaml")
    assert str(err.value) == (
        "acme.yaml: invalid policy\n"
        "  - data_classes.a.rulez: unknown field; remove it or check its spelling\n"
        "  - extra: unknown field; remove it or check its spelling"
    )


def test_a_policy_wide_allow_list_refuses_every_other_provider() -> None:
    policy = load_policy_text("name: acme\nproviders: {allow: [ovhcloud]}\ndata_classes: {a: {}}")
    other = ProviderFacts(id="aws", name="AWS", marketplace=False)
    law = Jurisdictions(frozenset(), frozenset(), frozenset(), frozenset())
    (failures,) = evaluate_classes(
        policy.data_class("a"), [OfferClass("aws", "r", "FR")], lambda _: other, law
    )
    assert failures == (
        Rejection(
            Reason.PROVIDER_DENIED,
            "providers",
            "aws/r rejected: provider aws is not on the allow list of policy `acme`",
        ),
    )
