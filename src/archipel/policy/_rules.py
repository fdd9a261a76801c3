"""Policy rules: each a small, named check over one equivalence class of offers.

A rule sees the provider's facts, the site's country and the jurisdiction
groups, and answers ``None`` (satisfied) or a :class:`Rejection`. An unknown
fact (``None``) never satisfies a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from archipel.core import (
    CloudActExposure,
    Jurisdictions,
    OfferClass,
    ProviderFacts,
    Reason,
    Rejection,
)


class Rule(Protocol):
    """A policy rule; ``name`` is stable and appears in every rejection it makes."""

    @property
    def name(self) -> str: ...

    def describe(self) -> str:
        """What the rule requires, in plain words (``policy show``)."""
        ...

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None: ...


def _where(site: OfferClass) -> str:
    return f"{site.provider}/{site.region or '-'}"


_PLACE_WORDS = {
    "eu": "the EU",
    "eu_eea": "the EU/EEA",
    "eea": "the EU/EEA",
    "adequacy": "a country with an EU adequacy decision",
    "adequacy_partial": "a country with a partial EU adequacy decision",
}


def place_words(places: tuple[str, ...]) -> str:
    """``('eu_eea', 'adequacy')`` as people say it: "the EU/EEA or a country with ..."."""
    return " or ".join(_PLACE_WORDS.get(p.lower(), p.upper()) for p in places)


_EXPOSURE_ORDER = tuple(CloudActExposure)


def exposure_words(allowed: frozenset[CloudActExposure]) -> str:
    """The allowed CLOUD Act exposures, in the registry's order: "no" or "unclear or no"."""
    return " or ".join(e.value for e in _EXPOSURE_ORDER if e in allowed)


@dataclass(frozen=True, slots=True)
class VettedProvider:
    """The provider has a registry entry and is not a peer-to-peer marketplace."""

    policy_label: str
    name: str = "vetted_provider"

    def describe(self) -> str:
        return "the provider has a registry entry and is not a peer-to-peer marketplace"

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        if not provider.registered:
            return Rejection(
                Reason.UNVETTED,
                self.name,
                f"{_where(site)} rejected: provider {provider.id!r} has no registry entry; "
                f"policy `{self.policy_label}` requires a vetted provider",
            )
        if provider.marketplace is None:
            return Rejection(
                Reason.UNVETTED,
                self.name,
                f"{_where(site)} rejected: the registry does not say whether {provider.id} "
                f"is a marketplace; policy `{self.policy_label}` requires a vetted provider",
            )
        if provider.marketplace:
            return Rejection(
                Reason.MARKETPLACE,
                self.name,
                f"{_where(site)} rejected: {provider.name} is a peer-to-peer marketplace "
                f"(hosts are not vetted); policy `{self.policy_label}` forbids it",
            )
        return None


_CERT_LABELS = {
    "iso27001": "ISO 27001",
    "bsi_c5": "BSI C5",
    "hds": "HDS",
    "secnumcloud": "SecNumCloud",
}


@dataclass(frozen=True, slots=True)
class Certification:
    """The provider holds a certification (``iso27001``, ``bsi_c5``, ``hds``...)."""

    certification: str
    policy_label: str
    name: str = "certification"

    def describe(self) -> str:
        return f"the provider holds {_CERT_LABELS.get(self.certification, self.certification)}"

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        held = provider.certification(self.certification)
        if held is True:
            return None
        label = _CERT_LABELS.get(self.certification, self.certification)
        state = "not held" if held is False else "unknown in the registry"
        return Rejection(
            Reason.CERTIFICATION,
            self.name,
            f"{_where(site)} rejected: {label} {state} for {provider.id}; "
            f"policy `{self.policy_label}` requires it",
        )


@dataclass(frozen=True, slots=True)
class SecNumCloud:
    """The provider holds a SecNumCloud qualification with the given status."""

    status: str
    policy_label: str
    name: str = "secnumcloud"

    def describe(self) -> str:
        if self.status == "qualified":
            return "the provider holds a SecNumCloud qualification"
        return "the provider's SecNumCloud qualification is in progress"

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        if provider.secnumcloud == self.status:
            return None
        have = provider.secnumcloud or "unknown"
        return Rejection(
            Reason.CERTIFICATION,
            self.name,
            f"{_where(site)} rejected: SecNumCloud status of {provider.id} is {have}; "
            f"policy `{self.policy_label}` requires {self.status}",
        )


@dataclass(frozen=True, slots=True)
class CloudActAllowed:
    """The provider's CLOUD Act exposure is one of ``allowed``."""

    allowed: frozenset[CloudActExposure]
    policy_label: str
    name: str = "cloud_act_exposure"

    def describe(self) -> str:
        return f"CLOUD Act exposure: {exposure_words(self.allowed)}"

    def _allowed_words(self) -> str:
        if self.allowed == {CloudActExposure.NO}:
            return "providers not exposed to the US CLOUD Act"
        return f"providers whose US CLOUD Act exposure is {exposure_words(self.allowed)}"

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        if provider.cloud_act is not None and provider.cloud_act in self.allowed:
            return None
        who = provider.id
        if provider.cloud_act is None:
            why = f"the registry does not say whether {who} is exposed to the US CLOUD Act"
        elif provider.cloud_act is CloudActExposure.YES:
            why = f"{who} is exposed to the US CLOUD Act"
        elif provider.cloud_act is CloudActExposure.VIA_PARENT:
            why = f"{who} is exposed to the US CLOUD Act through its parent company"
        elif provider.cloud_act is CloudActExposure.UNCLEAR:
            why = f"whether {who} is exposed to the US CLOUD Act is unclear"
        else:
            why = f"{who} is not exposed to the US CLOUD Act"
        return Rejection(
            Reason.CLOUD_ACT,
            self.name,
            f"{_where(site)} rejected: {why}; policy `{self.policy_label}` allows only "
            f"{self._allowed_words()}",
        )


@dataclass(frozen=True, slots=True)
class SiteIn:
    """The site's country is in one of the named groups or listed countries."""

    places: tuple[str, ...]  # group names (eu_eea, adequacy...) or ISO codes
    policy_label: str
    name: str = "site_in"

    def describe(self) -> str:
        return f"the site is in {place_words(self.places)}"

    def countries(self, law: Jurisdictions) -> frozenset[str]:
        return law.countries(self.places)

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        places = place_words(self.places)
        if site.country is None:
            return Rejection(
                Reason.UNKNOWN_COUNTRY,
                self.name,
                f"{_where(site)} rejected: the country of this region is unknown; "
                f"policy `{self.policy_label}` requires a site in {places}",
            )
        if site.country in self.countries(law):
            return None
        return Rejection(
            Reason.COUNTRY,
            self.name,
            f"{_where(site)} rejected: site in {site.country}; policy `{self.policy_label}` "
            f"requires a site in {places}",
        )


@dataclass(frozen=True, slots=True)
class ProviderDenied:
    """The provider is on a deny list (or off an allow list)."""

    deny: frozenset[str]
    allow: frozenset[str] | None
    policy_label: str
    name: str = "providers"

    def describe(self) -> str:
        parts = []
        if self.allow is not None:
            parts.append(f"only the providers {', '.join(sorted(self.allow)) or '(none)'}")
        if self.deny:
            parts.append(f"never the providers {', '.join(sorted(self.deny))}")
        return "; ".join(parts) or "any provider"

    def check(
        self, provider: ProviderFacts, site: OfferClass, law: Jurisdictions
    ) -> Rejection | None:
        if provider.id in self.deny:
            return Rejection(
                Reason.PROVIDER_DENIED,
                self.name,
                f"{_where(site)} rejected: provider {provider.id} is denied by policy "
                f"`{self.policy_label}`",
            )
        if self.allow is not None and provider.id not in self.allow:
            return Rejection(
                Reason.PROVIDER_DENIED,
                self.name,
                f"{_where(site)} rejected: provider {provider.id} is not on the allow list "
                f"of policy `{self.policy_label}`",
            )
        return None
