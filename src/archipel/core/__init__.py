"""Archipel's vocabulary: offers, providers, workloads, money and verdicts. No I/O."""

from archipel.core._accelerators import (
    AcceleratorRequest,
    canonical_accelerator,
    parse_accelerator_spec,
    resolve_accelerator,
)
from archipel.core._errors import (
    ArchipelError,
    CatalogError,
    InputError,
    PolicyError,
    SpecError,
    UnknownAcceleratorError,
)
from archipel.core._facts import CloudActExposure, Jurisdictions, ProviderFacts
from archipel.core._money import MISSING, NANO, Money, nano_to_decimal, parse_price
from archipel.core._offers import COLUMNS, CatalogSnapshot, Offer, OfferClass, OfferTable
from archipel.core._verdicts import Reason, Rejection
from archipel.core._workload import (
    Constraints,
    DataSpec,
    Resources,
    Workload,
    WorkloadKind,
    parse_workload,
)

__all__ = [
    "AcceleratorRequest",
    "ArchipelError",
    "COLUMNS",
    "CatalogError",
    "CatalogSnapshot",
    "CloudActExposure",
    "Constraints",
    "DataSpec",
    "InputError",
    "Jurisdictions",
    "MISSING",
    "Money",
    "NANO",
    "Offer",
    "OfferClass",
    "OfferTable",
    "PolicyError",
    "ProviderFacts",
    "Reason",
    "Rejection",
    "Resources",
    "SpecError",
    "UnknownAcceleratorError",
    "Workload",
    "WorkloadKind",
    "canonical_accelerator",
    "nano_to_decimal",
    "parse_accelerator_spec",
    "parse_price",
    "parse_workload",
    "resolve_accelerator",
]
