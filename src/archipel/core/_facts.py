"""Legal facts about providers and countries, as the policy engine sees them.

Every tri-state fact is ``True``, ``False`` or ``None`` (unknown). An unknown
fact never satisfies a rule: the policy engine treats ``None`` as "no".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class CloudActExposure(StrEnum):
    """How far the US CLOUD Act can reach a provider (see the registry's scale)."""

    YES = "yes"
    VIA_PARENT = "via-parent"
    UNCLEAR = "unclear"
    NO = "no"


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What the registry knows about one provider.

    ``registered`` is false for a provider that sells in the catalog but has no
    registry entry: all its facts are then unknown.
    """

    id: str
    name: str
    kind: str | None = None
    registered: bool = True
    marketplace: bool | None = None
    hq_country: str | None = None
    parent_jurisdiction: str | None = None
    cloud_act: CloudActExposure | None = None
    cloud_act_reason: str | None = None
    secnumcloud: str | None = None  # "qualified", "in_progress", "none" or None
    certifications: Mapping[str, bool | None] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    @property
    def vetted(self) -> bool:
        """Registered and not a peer-to-peer marketplace (unknown counts as not vetted)."""
        return self.registered and self.marketplace is False

    def certification(self, name: str) -> bool | None:
        """The tri-state value of a certification (``iso27001``, ``bsi_c5``, ``hds``...)."""
        if name == "secnumcloud":
            return None if self.secnumcloud is None else self.secnumcloud == "qualified"
        return self.certifications.get(name)


@dataclass(frozen=True, slots=True)
class Jurisdictions:
    """Country groups that data-protection rules refer to (ISO 3166-1 alpha-2)."""

    eu: frozenset[str]
    eea_non_eu: frozenset[str]
    adequacy_full: frozenset[str]
    adequacy_partial: frozenset[str]
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def eu_eea(self) -> frozenset[str]:
        """The EEA: the EU member states plus Iceland, Liechtenstein and Norway."""
        return self.eu | self.eea_non_eu

    def group(self, name: str) -> frozenset[str] | None:
        """Countries of a named group, or ``None`` if ``name`` is not a group.

        One meaning everywhere a group name is accepted (request countries,
        workload and fleet files, policy ``site_in``): ``eu`` is the 27 member
        states; ``eea`` (and its older spelling ``eu_eea``) adds Iceland,
        Liechtenstein and Norway, where the GDPR applies too.
        """
        groups = {
            "eu": self.eu,
            "eu_eea": self.eu_eea,
            "eea": self.eu_eea,
            "adequacy": self.adequacy_full,
            "adequacy_partial": self.adequacy_partial,
        }
        return groups.get(name.lower())

    def countries(self, places: Iterable[str]) -> frozenset[str]:
        """The countries of ``places``: each a group name (see :meth:`group`) or a country
        code (either case). The one expansion every country rule and filter uses."""
        out: set[str] = set()
        for place in places:
            group = self.group(place)
            out |= group if group is not None else {place.upper()}
        return frozenset(out)


#: The country groups a request may name (``--countries``, ``constraints.countries``),
#: upper case, each with the one name it is kept under.
COUNTRY_GROUPS: Mapping[str, str] = {"EU": "EU", "EEA": "EEA", "EU_EEA": "EEA"}
