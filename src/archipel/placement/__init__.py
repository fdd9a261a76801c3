"""The placement engine: decide where a workload runs, and explain every rejection.

A pure function of an immutable catalog snapshot and a policy: the same
inputs give the same plan. See ``docs/placement.md`` for the phases.
"""

from archipel.placement._engine import (
    OfferRejection,
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
from archipel.placement._fleet import plan_fleet
from archipel.placement._fleet_check import check
from archipel.placement._fleet_greedy import greedy
from archipel.placement._fleet_model import (
    Account,
    Assignment,
    Candidates,
    FleetPlan,
    Option,
    ProviderAccount,
    SolverReport,
    Violation,
    ViolationFamily,
    account,
    candidates,
    commitment_dues,
)
from archipel.placement._request import PlacementRequest
from archipel.placement._sites import SiteStateFilter, site_filters

__all__ = [
    "Account",
    "Assignment",
    "BudgetFilter",
    "Candidates",
    "CountryFilter",
    "DEFAULT_FILTERS",
    "FilterContext",
    "FilterPlugin",
    "FilterResult",
    "FleetPlan",
    "HardwareFilter",
    "MarketFilter",
    "OfferRejection",
    "OfferVerdict",
    "Option",
    "Placement",
    "PlacementRequest",
    "Plan",
    "PlanTrace",
    "Planner",
    "PolicyFilter",
    "ProviderAccount",
    "ProviderFilter",
    "RejectionCount",
    "SiteStateFilter",
    "SolverReport",
    "Violation",
    "ViolationFamily",
    "account",
    "candidates",
    "check",
    "commitment_dues",
    "greedy",
    "plan_fleet",
    "site_filters",
]
