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
from archipel.core._facts import COUNTRY_GROUPS, CloudActExposure, Jurisdictions, ProviderFacts
from archipel.core._fleet import (
    CapacityLimit,
    Commitment,
    Concentration,
    FleetSpec,
    Period,
    parse_fleet,
)
from archipel.core._money import MISSING, NANO, Money, nano_to_decimal, parse_price
from archipel.core._offers import COLUMNS, CatalogSnapshot, Offer, OfferClass, OfferTable
from archipel.core._runs import TRANSITIONS, RunState, TransitionError, check_transition
from archipel.core._verdicts import Reason, Rejection
from archipel.core._workload import (
    Constraints,
    DataSpec,
    Resources,
    RunSpec,
    ServePrice,
    ServeSpec,
    Spread,
    Workload,
    WorkloadKind,
    parse_workload,
)

__all__ = [
    "AcceleratorRequest",
    "ArchipelError",
    "COLUMNS",
    "COUNTRY_GROUPS",
    "CapacityLimit",
    "CatalogError",
    "CatalogSnapshot",
    "CloudActExposure",
    "Commitment",
    "Concentration",
    "Constraints",
    "DataSpec",
    "FleetSpec",
    "InputError",
    "Jurisdictions",
    "MISSING",
    "Money",
    "NANO",
    "Offer",
    "OfferClass",
    "OfferTable",
    "Period",
    "PolicyError",
    "ProviderFacts",
    "Reason",
    "Rejection",
    "Resources",
    "RunSpec",
    "RunState",
    "ServePrice",
    "ServeSpec",
    "SpecError",
    "Spread",
    "TRANSITIONS",
    "TransitionError",
    "UnknownAcceleratorError",
    "Workload",
    "WorkloadKind",
    "canonical_accelerator",
    "check_transition",
    "nano_to_decimal",
    "parse_accelerator_spec",
    "parse_fleet",
    "parse_price",
    "parse_workload",
    "resolve_accelerator",
]
