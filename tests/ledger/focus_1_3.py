"""An independent FOCUS 1.3 oracle: the columns of both datasets, transcribed from the spec.

Written by hand from the FinOps Foundation's specification, never from the
exporter's column list, so that a column the exporter drops, misnames or
mistypes shows here. Sources (repository FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec):

- the 1.2 release, tag v1.2 (commit 7296e3146fb931ee32b6496fa6e4200e7f4384f7),
  ``specification/columns/*.md``, "Content constraints" tables: every column 1.3 kept;
- the 1.3 column files under ``specification/datasets/cost_and_usage/columns/``
  (ServiceProviderName at 085459e3bc9c6ea0d4607b6bd423a98604802219, HostProviderName
  at 03c652c35e241d7b546b77c7b07982a29376a7ea, ProviderName deprecated at
  0cfefac7168af3dd65057f7a258859fc76c8f305, PublisherName deprecated at
  0f82f3a303f998e3e11c7e31ef744a58db6a9c1b, ContractApplied at
  096c1cb5b97ea5e3c514138f2d705eb3cc93654b) and the dataset index
  ``columns.mdpp`` at 02645d23d2d4dceb005c685080037febee890dea;
- the Contract Commitment dataset table, ``specification/datasets/contract_commitment/
  dataset.md`` at 0093e6af1f136202d6159705d050368db7573fd4, and its allowed values
  (ContractCommitmentCategory at 0da1788ec647b3e261111c887973eafb744ff372).

Published text: https://focus.finops.org/focus-specification/v1-3/
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPEC_URL = "https://focus.finops.org/focus-specification/v1-3/"
SPEC_REPOSITORY = "https://github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec"

MANDATORY = "Mandatory"
CONDITIONAL = "Conditional"
RECOMMENDED = "Recommended"

STRING = "String"
DECIMAL = "Decimal"
DATETIME = "Date/Time"
JSON = "JSON"


@dataclass(frozen=True)
class Column:
    """One column as the spec states it."""

    level: str
    kind: str
    nullable: bool
    allowed: tuple[str, ...] = ()


def _c(level: str, kind: str, nullable: bool, allowed: Sequence[str] = ()) -> Column:
    return Column(level, kind, nullable, tuple(allowed))


SERVICE_CATEGORIES = (
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
    "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
    "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
    "Storage", "Web", "Other",
)  # fmt: skip

#: ServiceSubcategory values of the categories Archipel uses, with their category
SERVICE_SUBCATEGORIES = {
    "AI and Machine Learning": (
        "AI Platforms", "Bots", "Generative AI", "Machine Learning",
        "Natural Language Processing", "Other (AI and Machine Learning)",
    ),
    "Compute": (
        "Containers", "End User Computing", "Quantum Compute", "Serverless Compute",
        "Virtual Machines", "Other (Compute)",
    ),
    "Other": ("Other (Other)",),
}  # fmt: skip

COST_AND_USAGE: Mapping[str, Column] = {
    "AllocatedMethodDetails": _c(RECOMMENDED, JSON, True),
    "AllocatedMethodId": _c(CONDITIONAL, STRING, True),
    "AllocatedResourceId": _c(CONDITIONAL, STRING, True),
    "AllocatedResourceName": _c(CONDITIONAL, STRING, True),
    "AllocatedTags": _c(CONDITIONAL, JSON, True),
    "AvailabilityZone": _c(RECOMMENDED, STRING, True),
    "BilledCost": _c(MANDATORY, DECIMAL, False),
    "BillingAccountId": _c(MANDATORY, STRING, False),
    "BillingAccountName": _c(MANDATORY, STRING, True),
    "BillingAccountType": _c(CONDITIONAL, STRING, False),
    "BillingCurrency": _c(MANDATORY, STRING, False),
    "BillingPeriodEnd": _c(MANDATORY, DATETIME, False),
    "BillingPeriodStart": _c(MANDATORY, DATETIME, False),
    "CapacityReservationId": _c(CONDITIONAL, STRING, True),
    "CapacityReservationStatus": _c(CONDITIONAL, STRING, True, ("Used", "Unused")),
    "ChargeCategory": _c(
        MANDATORY, STRING, False, ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
    ),
    "ChargeClass": _c(MANDATORY, STRING, True, ("Correction",)),
    "ChargeDescription": _c(MANDATORY, STRING, True),
    "ChargeFrequency": _c(RECOMMENDED, STRING, False, ("One-Time", "Recurring", "Usage-Based")),
    "ChargePeriodEnd": _c(MANDATORY, DATETIME, False),
    "ChargePeriodStart": _c(MANDATORY, DATETIME, False),
    "CommitmentDiscountCategory": _c(CONDITIONAL, STRING, True, ("Spend", "Usage")),
    "CommitmentDiscountId": _c(CONDITIONAL, STRING, True),
    "CommitmentDiscountName": _c(CONDITIONAL, STRING, True),
    "CommitmentDiscountQuantity": _c(CONDITIONAL, DECIMAL, True),
    "CommitmentDiscountStatus": _c(CONDITIONAL, STRING, True, ("Used", "Unused")),
    "CommitmentDiscountType": _c(CONDITIONAL, STRING, True),
    "CommitmentDiscountUnit": _c(CONDITIONAL, STRING, True),
    "ConsumedQuantity": _c(CONDITIONAL, DECIMAL, True),
    "ConsumedUnit": _c(CONDITIONAL, STRING, True),
    "ContractApplied": _c(CONDITIONAL, JSON, True),
    "ContractedCost": _c(MANDATORY, DECIMAL, False),
    "ContractedUnitPrice": _c(CONDITIONAL, DECIMAL, True),
    "EffectiveCost": _c(MANDATORY, DECIMAL, False),
    # the table says "Allows nulls: True", the requirements "MUST NOT be null": the stricter
    "HostProviderName": _c(MANDATORY, STRING, False),
    "InvoiceId": _c(RECOMMENDED, STRING, True),
    "InvoiceIssuerName": _c(MANDATORY, STRING, False),
    "ListCost": _c(MANDATORY, DECIMAL, False),
    "ListUnitPrice": _c(CONDITIONAL, DECIMAL, True),
    "PricingCategory": _c(CONDITIONAL, STRING, True, ("Standard", "Dynamic", "Committed", "Other")),
    "PricingCurrency": _c(CONDITIONAL, STRING, True),
    "PricingCurrencyContractedUnitPrice": _c(CONDITIONAL, DECIMAL, True),
    "PricingCurrencyEffectiveCost": _c(CONDITIONAL, DECIMAL, True),
    "PricingCurrencyListUnitPrice": _c(CONDITIONAL, DECIMAL, True),
    "PricingQuantity": _c(MANDATORY, DECIMAL, True),
    "PricingUnit": _c(MANDATORY, STRING, True),
    "ProviderName": _c(MANDATORY, STRING, False),  # deprecated in 1.3, still mandatory
    "PublisherName": _c(MANDATORY, STRING, False),  # deprecated in 1.3, still mandatory
    "RegionId": _c(CONDITIONAL, STRING, True),
    "RegionName": _c(CONDITIONAL, STRING, True),
    "ResourceId": _c(CONDITIONAL, STRING, True),
    "ResourceName": _c(CONDITIONAL, STRING, True),
    "ResourceType": _c(CONDITIONAL, STRING, True),
    "ServiceCategory": _c(MANDATORY, STRING, False, SERVICE_CATEGORIES),
    "ServiceName": _c(MANDATORY, STRING, False),
    "ServiceProviderName": _c(MANDATORY, STRING, False),
    "ServiceSubcategory": _c(RECOMMENDED, STRING, False),
    "SkuId": _c(CONDITIONAL, STRING, True),
    "SkuMeter": _c(CONDITIONAL, STRING, True),
    "SkuPriceDetails": _c(CONDITIONAL, JSON, True),
    "SkuPriceId": _c(CONDITIONAL, STRING, True),
    "SubAccountId": _c(CONDITIONAL, STRING, True),
    "SubAccountName": _c(CONDITIONAL, STRING, True),
    "SubAccountType": _c(CONDITIONAL, STRING, True),
    "Tags": _c(CONDITIONAL, JSON, True),
}

CONTRACT_COMMITMENT: Mapping[str, Column] = {
    "BillingCurrency": _c(MANDATORY, STRING, True),
    "ContractCommitmentCategory": _c(MANDATORY, STRING, False, ("Spend", "Usage")),
    "ContractCommitmentCost": _c(MANDATORY, DECIMAL, True),
    "ContractCommitmentDescription": _c(MANDATORY, STRING, True),
    "ContractCommitmentId": _c(MANDATORY, STRING, False),
    "ContractCommitmentPeriodEnd": _c(MANDATORY, DATETIME, False),
    "ContractCommitmentPeriodStart": _c(MANDATORY, DATETIME, False),
    "ContractCommitmentQuantity": _c(MANDATORY, DECIMAL, True),
    "ContractCommitmentType": _c(MANDATORY, STRING, False),
    "ContractCommitmentUnit": _c(MANDATORY, STRING, True),
    "ContractId": _c(MANDATORY, STRING, False),
    "ContractPeriodEnd": _c(MANDATORY, DATETIME, False),
    "ContractPeriodStart": _c(MANDATORY, DATETIME, False),
}

#: FOCUS date/time format: ISO 8601 in UTC, e.g. 2024-01-01T00:00:00Z
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
#: numeric format: plain decimal notation, optional sign, no exponent, no thousands separator
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def problems(
    dataset: Mapping[str, Column], header: Sequence[str], rows: Sequence[Sequence[str]]
) -> list[str]:
    """What in a CSV file (``header``, ``rows``; empty cell = null) breaks ``dataset``'s columns."""
    out: list[str] = []
    for name, column in dataset.items():
        if column.level == MANDATORY and name not in header:
            out.append(f"{name}: mandatory column missing")
    seen_custom = False
    for name in header:
        if name.startswith("x_"):
            seen_custom = True
        elif name not in dataset:
            out.append(f"{name}: not a FOCUS 1.3 column and not prefixed x_")
        elif seen_custom:
            out.append(f"{name}: a FOCUS column after custom (x_) columns")
    if len(set(header)) != len(header):
        out.append("a column appears twice")
    for index, name in enumerate(header):
        column = dataset.get(name)
        if column is None:
            continue
        for number, row in enumerate(rows, start=2):
            out += [f"{name} (line {number}): {p}" for p in _cell(name, column, row[index])]
    return out


def _cell(name: str, column: Column, value: str) -> list[str]:
    if value == "":
        return [] if column.nullable else ["null, but the column allows no nulls"]
    found: list[str] = []
    if column.kind == DECIMAL and not _NUMBER.fullmatch(value):
        found.append(f"{value!r} is not a plain decimal")
    if column.kind == DATETIME and not _DATETIME.fullmatch(value):
        found.append(f"{value!r} is not YYYY-MM-DDTHH:MM:SSZ")
    if column.kind == JSON:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            found.append(f"{value!r} is not a JSON object")
    if column.allowed and value not in column.allowed:
        found.append(f"{value!r} is not one of the allowed values")
    if name.endswith("Currency") and not _CURRENCY.fullmatch(value):
        found.append(f"{value!r} is not an ISO 4217 code")
    return found


def subcategory_problems(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """ServiceSubcategory must be one of its ServiceCategory's subcategories."""
    if "ServiceSubcategory" not in header:
        return []
    cat, sub = header.index("ServiceCategory"), header.index("ServiceSubcategory")
    return [
        f"line {n}: {row[sub]!r} is not a subcategory of {row[cat]!r}"
        for n, row in enumerate(rows, start=2)
        if row[sub] not in SERVICE_SUBCATEGORIES.get(row[cat], ())
    ]
