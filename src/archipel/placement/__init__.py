"""The placement engine: decide where a workload runs, and explain every rejection.

A pure function of an immutable catalog snapshot and a policy: the same
inputs give the same plan. See ``docs/architecture.md`` for the phases
(prefilter, filter, score, rank) and their plugin interfaces.
"""

from archipel.placement._engine import OfferVerdict, Placement, Plan, Planner
from archipel.placement._filters import (
    DEFAULT_FILTERS,
    BudgetFilter,
    CountryFilter,
    HardwareFilter,
    MarketFilter,
    PolicyFilter,
    ProviderFilter,
    policy_verdicts,
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
from archipel.placement._phases import (
    MAX_SCORE,
    FilterContext,
    FilterObserver,
    FilterPlugin,
    FilterResult,
    PluginScore,
    PreFilterPlugin,
    ScoreBreakdown,
    ScorePlugin,
    run_filters,
    run_scores,
)
from archipel.placement._request import PlacementRequest
from archipel.placement._scores import DEFAULT_SCORES, CommitmentScore, PriceScore
from archipel.placement._sites import SiteStateFilter, site_filters
from archipel.placement._trace import OfferRejection, PlanTrace, RejectionCount

__all__ = [
    "Account",
    "Assignment",
    "BudgetFilter",
    "Candidates",
    "CommitmentScore",
    "CountryFilter",
    "DEFAULT_FILTERS",
    "DEFAULT_SCORES",
    "FilterContext",
    "FilterObserver",
    "FilterPlugin",
    "FilterResult",
    "FleetPlan",
    "HardwareFilter",
    "MAX_SCORE",
    "MarketFilter",
    "OfferRejection",
    "OfferVerdict",
    "Option",
    "Placement",
    "PlacementRequest",
    "Plan",
    "PlanTrace",
    "Planner",
    "PluginScore",
    "PolicyFilter",
    "PreFilterPlugin",
    "PriceScore",
    "ProviderAccount",
    "ProviderFilter",
    "RejectionCount",
    "ScoreBreakdown",
    "ScorePlugin",
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
    "policy_verdicts",
    "run_filters",
    "run_scores",
    "site_filters",
]
