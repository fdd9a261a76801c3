"""Facts written down by hand from primary sources, independent of the shipped tables.

The catalog's fact tables (``jurisdictions.yaml``, ``regions.yaml``,
``providers.yaml``) and the snapshot built from them are what the code under
test reads. These tables are the expectations the tests hold them to: a wrong
fact in the data fails a test even after the snapshot is rebuilt from it.
Change a line here only with its primary source in hand.
"""

from __future__ import annotations

# Source: https://european-union.europa.eu/principles-countries-history/eu-countries_en
# (27 member states since the United Kingdom left on 31 January 2020). ISO 3166-1
# alpha-2: Greece is GR, although EU documents write EL.
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)

# Source: Agreement on the European Economic Area, OJ L 1, 3.1.1994, and
# https://www.efta.int/eea ("The EEA Agreement ... brings together the EU Member
# States and the three EEA EFTA States - Iceland, Liechtenstein and Norway").
# Switzerland is in EFTA but not in the EEA.
EEA_NOT_EU = frozenset({"IS", "LI", "NO"})
EEA = EU_MEMBER_STATES | EEA_NOT_EU

# Source: https://commission.europa.eu/law/law-topic/data-protection/
# international-dimension-data-protection/adequacy-decisions_en. Full decisions,
# and the two that cover every commercial organisation (Canada PIPEDA 2002/2/EC,
# Japan APPI (EU) 2019/419), which any cloud provider falls under. Brazil:
# Commission Implementing Decision (EU) 2026/179 of 26 January 2026.
ADEQUACY_FULL = frozenset("AD AR BR CA CH FO GB GG IL IM JE JP KR NZ UY".split())
# The EU-US Data Privacy Framework, Implementing Decision (EU) 2023/1795: only
# organisations that certify themselves, so a separate group.
ADEQUACY_PARTIAL = frozenset({"US"})

# Countries that are close to the groups above and must never be in the EU or EEA.
NEVER_EU_OR_EEA = frozenset({"CH", "GB", "RU", "TR", "UA", "RS", "AL", "ME", "MK", "MD", "FO"})

# (provider, region) -> country, for a sample of the regions plans land in most.
# Sources: each provider's own region list.
REGION_COUNTRY = {
    # https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
    ("aws", "us-east-1"): "US",  # N. Virginia
    ("aws", "eu-central-1"): "DE",  # Frankfurt
    ("aws", "eu-west-1"): "IE",  # Ireland
    ("aws", "eu-west-2"): "GB",  # London
    ("aws", "eu-west-3"): "FR",  # Paris
    ("aws", "eu-north-1"): "SE",  # Stockholm
    ("aws", "ap-northeast-1"): "JP",  # Tokyo
    # https://cloud.google.com/compute/docs/regions-zones
    ("gcp", "europe-west1"): "BE",  # St. Ghislain
    ("gcp", "europe-west4"): "NL",  # Eemshaven
    ("gcp", "europe-west6"): "CH",  # Zurich
    ("gcp", "europe-west9"): "FR",  # Paris
    ("gcp", "europe-north1"): "FI",  # Hamina
    ("gcp", "us-central1"): "US",  # Iowa
    # https://learn.microsoft.com/azure/reliability/regions-list
    ("azure", "westeurope"): "NL",  # Netherlands
    ("azure", "northeurope"): "IE",  # Ireland
    ("azure", "francecentral"): "FR",  # Paris
    ("azure", "norwayeast"): "NO",  # Oslo
    ("azure", "switzerlandnorth"): "CH",  # Zurich
    ("azure", "uksouth"): "GB",  # London
    # https://docs.hyperstack.cloud (regions: CANADA-1, NORWAY-1, US-1)
    ("hyperstack", "NORWAY-1"): "NO",
    ("hyperstack", "CANADA-1"): "CA",
    # https://www.scaleway.com/en/docs/account/reference-content/products-availability/
    ("scaleway", "fr-par"): "FR",  # Paris
    ("scaleway", "pl-waw"): "PL",  # Warsaw
    # https://www.ovhcloud.com/en/about-us/global-infrastructure/ (Gravelines, Warsaw)
    ("ovhcloud", "GRA"): "FR",
    ("ovhcloud", "WAW"): "PL",
    # https://docs.nebius.com/overview/regions (eu-north1 Finland, eu-west1 Paris)
    ("nebius", "eu-north1"): "FI",
    ("nebius", "eu-west1"): "FR",
}

# CLOUD Act exposure of a handful of providers. The CLOUD Act (18 U.S.C. § 2713)
# reaches providers under US jurisdiction: AWS (Amazon.com, Inc., Seattle),
# Microsoft (Redmond), Google (Mountain View), Oracle (Austin) and Lambda Labs
# (San Francisco) are US companies, per their terms of service. OVH SAS
# (Roubaix, https://www.ovhcloud.com/en/terms-and-conditions/) holds the ANSSI
# SecNumCloud qualification, which requires immunity from non-EU law
# (SecNumCloud 3.2 §19.6; https://cyber.gouv.fr/produits-services-qualifies).
# Scaleway SAS (Paris, https://www.scaleway.com/en/contracts/) is a French
# company of the French Iliad group, with no US parent.
# ``None``: the on-premises provider, whose facts depend on who runs the machines.
CLOUD_ACT = {
    "aws": "yes",
    "azure": "yes",
    "gcp": "yes",
    "oci": "yes",
    "lambda": "yes",
    "ovhcloud": "no",
    "scaleway": "no",
    "self": None,
}


# What the default policy reads about every provider that sells in the shipped
# catalog: (marketplace, CLOUD Act exposure, SecNumCloud status, ISO 27001).
# ``None`` = not established by a primary source, which every rule reads as "no".
# Sources: the provider's terms (legal seat), its trust or compliance page, and
# for SecNumCloud the ANSSI list https://cyber.gouv.fr/produits-services-qualifies.
PROVIDER_FACTS: dict[str, tuple[bool, str | None, str, bool | None]] = {
    # US companies (CLOUD Act, 18 U.S.C. § 2713); ISO 27001 certificates on
    # aws.amazon.com/compliance/iso-27001-faqs, learn.microsoft.com/compliance/
    # regulatory/offering-iso-27001, cloud.google.com/security/compliance/iso-27001,
    # oracle.com/corporate/cloud-compliance.
    "aws": (False, "yes", "none", True),
    "azure": (False, "yes", "none", True),
    "gcp": (False, "yes", "none", True),
    "oci": (False, "yes", "none", True),
    # lambda.ai/legal/terms (Lambda, Inc., San Francisco); SOC 2 only on its trust page.
    "lambda": (False, "yes", "none", None),
    # vast.ai/terms (Vast.ai Inc., US): a marketplace of third-party hosts.
    "vast": (True, "yes", "none", None),
    # hyperbolic.xyz/terms: GPU rentals from suppliers' machines (a marketplace);
    # the legal seat is not stated, so the exposure is unclear.
    "hyperbolic": (True, "unclear", "none", None),
    # hyperstack.cloud/terms-and-conditions: NexGen Cloud Ltd, London.
    "hyperstack": (False, "unclear", "none", None),
    # nebius.com/legal: Nebius B.V., Amsterdam, parent listed on Nasdaq.
    "nebius": (False, "unclear", "none", None),
    # ovhcloud.com terms (OVH SAS, Roubaix); SecNumCloud qualified (ANSSI list);
    # ISO 27001 at ovhcloud.com/en/compliance/iso-27001-27017-27018/.
    "ovhcloud": (False, "no", "qualified", True),
    # scaleway.com/en/contracts (Scaleway SAS, Paris, Iliad group); SecNumCloud
    # in progress; ISO 27001 at scaleway.com/en/security-and-resilience/.
    "scaleway": (False, "no", "in_progress", True),
    # seeweb.it (Seeweb s.r.l., Frosinone, Italy).
    "seeweb": (False, "no", "none", None),
    # verda.com/privacy-policy (Verda Oy, formerly DataCrunch, Helsinki).
    "verda": (False, "no", "none", None),
}
