"""The placement engine: decide where a workload runs, and explain every rejection.

A pure function of an immutable catalog snapshot and a policy: the same
inputs give the same plan. See ``docs/placement.md`` for the phases.
"""

from archipel.placement._engine import (
    OfferVerdict,
    Placement,
    Plan,
    Planner,
    PlanTrace,
    RejectionCount,
)
from archipel.placement._filters import (
    DEFAULT_FILTERS,
    BudgetFilter,
    CountryFilter,
    FilterContext,
    FilterPlugin,
    FilterResult,
    HardwareFilter,
    MarketFilter,
    PolicyFilter,
    ProviderFilter,
)
from archipel.placement._request import PlacementRequest

__all__ = [
    "BudgetFilter",
    "CountryFilter",
    "DEFAULT_FILTERS",
    "FilterContext",
    "FilterPlugin",
    "FilterResult",
    "HardwareFilter",
    "MarketFilter",
    "OfferVerdict",
    "Placement",
    "PlacementRequest",
    "Plan",
    "PlanTrace",
    "Planner",
    "PolicyFilter",
    "ProviderFilter",
    "RejectionCount",
]
