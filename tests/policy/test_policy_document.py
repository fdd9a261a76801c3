"""Policies are YAML documents; a bad one fails at load time with a precise message."""

from __future__ import annotations

import pytest

from archipel.core import Jurisdictions, OfferClass, PolicyError, ProviderFacts, Reason
from archipel.policy import Policy, default_policy, evaluate_classes, load_policy_text

LAW = Jurisdictions(
    eu=frozenset({"FR"}),
    eea_non_eu=frozenset(),
    adequacy_full=frozenset(),
    adequacy_partial=frozenset(),
)


def test_default_policy_has_the_six_classes() -> None:
    assert set(default_policy().data_classes) == {
        "public",
        "internal",
        "confidential",
        "personal",
        "health",
        "sovereign",
    }


def test_users_can_add_their_own_class_that_extends_another() -> None:
    policy = load_policy_text(
        """
        name: acme
        providers: {deny: [badco]}
        data_classes:
          internal: {rules: [vetted_provider]}
          french-only:
            extends: internal
            rules: [{site_in: [FR]}]
        """
    )
    rules = [r.name for r in policy.data_class("french-only").rules]
    assert rules == ["providers", "vetted_provider", "site_in"]


def test_policy_wide_deny_list_applies_to_every_class() -> None:
    policy = load_policy_text("name: p\nproviders: {deny: [badco]}\ndata_classes: {public: {}}")
    facts = ProviderFacts(id="badco", name="Bad Co", marketplace=False)
    (failures,) = evaluate_classes(
        policy.data_class("public"), [OfferClass("badco", "r", "FR")], lambda _: facts, LAW
    )
    assert failures[0].reason is Reason.PROVIDER_DENIED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_classes: {}", "data_classes"),
        ("data_classes: {a: {rules: [{site_in: [Europe]}]}}", "neither a group"),
        ("data_classes: {a: {rules: [{cloud_act_exposure: [no]}]}}", "quote `no`"),
        ("data_classes: {a: {rules: [{certification: soc2}]}}", "certification must be one of"),
        ("data_classes: {a: {rules: [{colour: red}]}}", "unknown rule 'colour'"),
        ("data_classes: {a: {rules: [vetted]}}", "a rule is `vetted_provider`"),
        ("data_classes: {a: {extends: b}}", "extends unknown class 'b'"),
        ("data_classes: {a: {extends: b}, b: {extends: a}}", "extends itself"),
        ("version: 2\ndata_classes: {a: {}}", "version"),
        ("data_classes: [a, b]", "data_classes"),
        ("- just a list", "mapping"),
        ("data_classes: {a: {rules: [", "not valid YAML"),
    ],
    ids=[
        "no classes",
        "unknown place",
        "bare no",
        "unknown certification",
        "unknown rule",
        "misspelt rule",
        "unknown parent",
        "cycle",
        "future version",
        "list of classes",
        "not a mapping",
        "broken yaml",
    ],
)
def test_bad_policies_are_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(")):
        load_policy_text(text, "p.yaml")


def test_unknown_data_class_lists_the_known_ones(policy: Policy) -> None:
    with pytest.raises(PolicyError, match="known data classes: confidential, health, internal"):
        policy.data_class("secret")


@pytest.mark.parametrize(
    ("typed", "name"),
    [("health", "health"), ("Health", "health"), ("HEALTH", "health"), (" personal ", "personal")],
    ids=["exact", "capitalised", "upper", "spaces"],
)
def test_data_class_names_ignore_case(policy: Policy, typed: str, name: str) -> None:
    assert policy.data_class(typed).name == name


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("helth", "health"), ("Personnal", "personal"), ("confidental", "confidential")],
    ids=["missing-letter", "extra-letter-and-case", "typo"],
)
def test_unknown_data_class_suggests_the_closest(
    policy: Policy, typed: str, suggested: str
) -> None:
    with pytest.raises(PolicyError, match=f"did you mean {suggested}\\?"):
        policy.data_class(typed)


@pytest.mark.parametrize(
    ("line", "currency"),
    [("", None), ("currency: EUR\n", "EUR"), ("currency: CHF\n", "CHF")],
    ids=["none: the catalog's", "EUR", "CHF"],
)
def test_a_policy_may_name_the_currency_plans_are_compared_in(
    line: str, currency: str | None
) -> None:
    policy = load_policy_text(line + "data_classes: {public: {}}\n")
    assert policy.currency == currency
    assert default_policy().currency is None


@pytest.mark.parametrize("value", ["eur", "EURO", "1"])
def test_a_policy_currency_is_an_iso_code(value: str) -> None:
    with pytest.raises(PolicyError, match="currency: String should match pattern"):
        load_policy_text(f"currency: '{value}'\ndata_classes: {{public: {{}}}}\n")


def test_an_exact_name_wins_over_one_that_differs_only_in_case() -> None:
    policy = load_policy_text("name: p\ndata_classes:\n  pii: {}\n  PII: {}\n")
    assert (policy.data_class("pii").name, policy.data_class("PII").name) == ("pii", "PII")


def test_at_most_three_close_names_are_suggested() -> None:
    policy = load_policy_text(
        "name: p\ndata_classes: {health-a: {}, health-b: {}, health-c: {}, health-d: {}}\n"
    )
    with pytest.raises(PolicyError) as err:
        policy.data_class("health")
    hint = str(err.value).split("; did you mean ")[1].split("? (known data classes: ")[0]
    named = hint.split(", ")
    assert len(named) == 3 and set(named) < {"health-a", "health-b", "health-c", "health-d"}
