"""Sovereignty policy as data: data classes, rules, evaluation per class of offers."""

from archipel.policy._evaluate import evaluate_classes
from archipel.policy._model import (
    DataClass,
    Policy,
    default_policy,
    load_policy_text,
    parse_policy,
)
from archipel.policy._rules import (
    Certification,
    CloudActAllowed,
    ProviderDenied,
    Rule,
    SecNumCloud,
    SiteIn,
    VettedProvider,
)

__all__ = [
    "Certification",
    "CloudActAllowed",
    "DataClass",
    "Policy",
    "ProviderDenied",
    "Rule",
    "SecNumCloud",
    "SiteIn",
    "VettedProvider",
    "default_policy",
    "evaluate_classes",
    "load_policy_text",
    "parse_policy",
]
