"""The control plane: runs workloads on real sites and keeps them alive.

A state store (SQLAlchemy: SQLite or PostgreSQL), sites reached through
backends, a reconciler that observes, adopts and acts, and an HTTP API.
"""

from archipel.controlplane._placement import SiteChoice, SitePlacer, SiteState
from archipel.controlplane._reconcile import Reconciler
from archipel.controlplane._records import (
    AttemptEnding,
    AttemptTerms,
    AttemptUpdate,
    AttemptView,
    EventView,
    NewAttempt,
    Principal,
    RunView,
)
from archipel.controlplane._round import StepReport
from archipel.controlplane._simulations import (
    SimulationInput,
    Simulations,
    SimulationState,
    SimulationView,
)
from archipel.controlplane._sites import (
    BACKEND_FACTORIES,
    Site,
    SiteSpec,
    build_sites,
    parse_sites,
)
from archipel.controlplane._store import Store
from archipel.controlplane._tokens import ROLES

__all__ = [
    "AttemptEnding",
    "AttemptTerms",
    "AttemptUpdate",
    "AttemptView",
    "BACKEND_FACTORIES",
    "EventView",
    "NewAttempt",
    "Principal",
    "ROLES",
    "Reconciler",
    "RunView",
    "SimulationInput",
    "SimulationState",
    "SimulationView",
    "Simulations",
    "Site",
    "SiteChoice",
    "SitePlacer",
    "SiteSpec",
    "SiteState",
    "StepReport",
    "Store",
    "build_sites",
    "parse_sites",
]
