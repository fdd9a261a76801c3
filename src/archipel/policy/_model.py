"""The policy document: data classes, each a list of rules, written as YAML.

Example::

    version: 1
    name: acme
    currency: EUR                # optional: the currency plans are compared in
    providers: {deny: [vast]}
    data_classes:
      internal:
        description: Registered providers only.
        rules: [vetted_provider]
      personal:
        extends: internal
        rules:
          - site_in: [eu_eea, adequacy]

Rule forms: ``vetted_provider``; ``certification: iso27001`` (or ``bsi_c5``,
``hds``); ``secnumcloud: qualified``; ``cloud_act_exposure: [no]``;
``site_in: [eu_eea, adequacy, CH, ...]``; ``providers: {allow: [...], deny: [...]}``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from archipel.core import CloudActExposure, DocumentError, PolicyError, StrictModel, validate
from archipel.policy._rules import (
    Certification,
    CloudActAllowed,
    ProviderDenied,
    Rule,
    SecNumCloud,
    SiteIn,
    VettedProvider,
)

_GROUPS = {"eu", "eea", "eu_eea", "adequacy", "adequacy_partial"}
_CERTS = {"iso27001", "bsi_c5", "hds"}


class PolicyDocumentError(DocumentError, PolicyError):
    """A policy document whose fields do not validate; ``problems`` names each one."""

    what = "policy"


class ProviderLists(StrictModel):
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()


class DataClassDoc(StrictModel):
    description: str = ""
    extends: str | None = None
    rules: tuple[Any, ...] = ()

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ValueError("rules must be a list")
        return tuple(value)


class PolicyDoc(StrictModel):
    version: int = Field(1, ge=1, le=1)
    name: str = "policy"
    description: str = ""
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    providers: ProviderLists = ProviderLists()
    data_classes: dict[str, DataClassDoc] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class DataClass:
    """A resolved data class: its own rules plus those it extends, in order."""

    name: str
    description: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy: data class name -> rules.

    ``currency`` is the comparison currency the policy's owner wants plans
    ranked and shown in (ISO 4217), ``None`` for the catalog's own.
    """

    name: str
    data_classes: Mapping[str, DataClass]
    currency: str | None = None

    def data_class(self, name: str) -> DataClass:
        """The rules of a data class, matched without regard to case.

        An unknown name is a :class:`PolicyError` that suggests the closest
        class names and lists the known ones.
        """
        found = self.data_classes.get(name)
        if found is not None:
            return found
        by_fold = {known.casefold(): cls for known, cls in self.data_classes.items()}
        found = by_fold.get(name.strip().casefold())
        if found is not None:
            return found
        close = difflib.get_close_matches(name.casefold(), list(by_fold), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(by_fold[c].name for c in close)}?" if close else ""
        known = ", ".join(sorted(self.data_classes))
        raise PolicyError(
            f"unknown data class {name!r} in policy `{self.name}`{hint} (known data classes: "
            f"{known}; `archipel policy show` describes them)"
        )


def _rule(item: Any, where: str, label: str) -> Rule:
    if item == "vetted_provider":
        return VettedProvider(policy_label=label)
    if not isinstance(item, Mapping) or len(item) != 1:
        raise PolicyError(
            f"{where}: a rule is `vetted_provider` or a one-key mapping such as "
            "`site_in: [eu_eea]`, `certification: iso27001`, `secnumcloud: qualified`, "
            "`cloud_act_exposure: [no]`, `providers: {deny: [...]}`"
        )
    ((kind, arg),) = item.items()
    if kind == "certification":
        if arg not in _CERTS:
            raise PolicyError(f"{where}: certification must be one of {', '.join(sorted(_CERTS))}")
        return Certification(certification=arg, policy_label=label)
    if kind == "secnumcloud":
        if arg not in {"qualified", "in_progress"}:
            raise PolicyError(f"{where}: secnumcloud must be `qualified` or `in_progress`")
        return SecNumCloud(status=arg, policy_label=label)
    if kind == "cloud_act_exposure":
        values = [arg] if isinstance(arg, str) else arg
        try:
            allowed = frozenset(CloudActExposure(str(v)) for v in values)
        except (ValueError, TypeError):
            raise PolicyError(
                f"{where}: cloud_act_exposure takes a list of yes, via-parent, unclear, no "
                "(quote `no`: YAML reads a bare no as false)"
            ) from None
        return CloudActAllowed(allowed=allowed, policy_label=label)
    if kind == "site_in":
        places = [arg] if isinstance(arg, str) else arg
        if not isinstance(places, list) or not places:
            raise PolicyError(f"{where}: site_in takes a list of groups or country codes")
        for place in places:
            if not isinstance(place, str) or (
                place.lower() not in _GROUPS and not (len(place) == 2 and place.isalpha())
            ):
                raise PolicyError(
                    f"{where}: {place!r} is neither a group ({', '.join(sorted(_GROUPS))}) "
                    "nor an ISO 3166-1 alpha-2 country code"
                )
        return SiteIn(places=tuple(places), policy_label=label)
    if kind == "providers":
        try:
            lists = ProviderLists.model_validate(arg)
        except ValidationError:
            raise PolicyError(f"{where}: providers takes {{allow: [...], deny: [...]}}") from None
        return ProviderDenied(
            deny=frozenset(lists.deny),
            allow=None if lists.allow is None else frozenset(lists.allow),
            policy_label=label,
        )
    raise PolicyError(f"{where}: unknown rule {kind!r}")


def _resolve(doc: PolicyDoc) -> dict[str, DataClass]:
    resolved: dict[str, DataClass] = {}
    global_rule: tuple[Rule, ...] = ()
    if doc.providers.deny or doc.providers.allow is not None:
        global_rule = (
            ProviderDenied(
                deny=frozenset(doc.providers.deny),
                allow=None if doc.providers.allow is None else frozenset(doc.providers.allow),
                policy_label=doc.name,
            ),
        )

    def visit(name: str, chain: Sequence[str]) -> tuple[Rule, ...]:
        if name in chain:
            raise PolicyError(f"data class {name!r} extends itself: {' -> '.join([*chain, name])}")
        spec = doc.data_classes.get(name)
        if spec is None:
            raise PolicyError(f"data class {chain[-1]!r} extends unknown class {name!r}")
        inherited = visit(spec.extends, [*chain, name]) if spec.extends else ()
        own = tuple(
            _rule(item, f"data_classes.{name}.rules[{i}]", name)
            for i, item in enumerate(spec.rules)
        )
        return inherited + own

    for name, spec in doc.data_classes.items():
        resolved[name] = DataClass(name, spec.description, global_rule + visit(name, []))
    return resolved


def parse_policy(document: Any, source: str = "<policy>") -> Policy:
    """Validate a policy document (already loaded from YAML)."""
    doc = validate(PolicyDoc, document, source, PolicyDocumentError, "a mapping with data_classes")
    try:
        classes = _resolve(doc)
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    return Policy(name=doc.name, data_classes=classes, currency=doc.currency)


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    """Parse a policy from YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    return parse_policy(document, source)


def default_policy() -> Policy:
    """The policy shipped with Archipel (``default_policy.yaml``)."""
    text = resources.files("archipel.policy").joinpath("default_policy.yaml").read_text("utf-8")
    return load_policy_text(text, "default_policy.yaml")
