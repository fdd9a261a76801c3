"""Per-tenant quotas, checked when a workload is submitted (I/O through the store only).

Three limits, the same for every tenant, set on the server (``archipel server
--max-active-runs/--max-replicas/--max-gpus``):

- ``active_runs``: runs of the tenant not finished yet (pending to running);
- ``replicas``: replicas in one submission;
- ``gpus``: GPUs asked for by the tenant's unfinished runs. A run asks for the
  largest count among its accelerator alternatives (``cpu`` counts none), times
  its nodes; a service for that many per replica.

A submission that could never fit (more replicas, runs or GPUs than the limit
itself) is refused for good: :attr:`QuotaRefusal.now` is false (HTTP 422). One
that does not fit *now*, because of what the tenant already has, is refused
for now (HTTP 429): it fits once some of the tenant's runs finish or are
cancelled. The check reads the store and then the submission is written: two
submissions of one tenant at the same instant may overshoot a limit by what
they submit together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from archipel.controlplane._store import Store
from archipel.core import Reason, Rejection, RunState, Workload

#: the defaults: generous for a team, finite against a runaway script
ACTIVE_RUNS = 1000
REPLICAS = 64
GPUS = 512

UNFINISHED = tuple(st for st in RunState if not st.terminal)


@dataclass(frozen=True, slots=True)
class Quotas:
    """What one tenant may have at once (see the module docstring)."""

    active_runs: int = ACTIVE_RUNS
    replicas: int = REPLICAS
    gpus: int = GPUS

    def __post_init__(self) -> None:
        for name in ("active_runs", "replicas", "gpus"):
            if getattr(self, name) < 1:
                raise ValueError(f"quota {name} must be at least 1, not {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """Why a submission was refused, and whether waiting can help (``now``)."""

    rejection: Rejection
    now: bool

    @property
    def status(self) -> int:
        """429 when it fits once the tenant's other runs finish, else 422."""
        return 429 if self.now else 422


def gpus_per_run(workload: Workload) -> int:
    """GPUs one run (one replica) of ``workload`` asks for."""
    counts = [a.count for a in workload.resources.accelerators if not a.is_cpu]
    return math.ceil(max(counts, default=0.0) * workload.resources.nodes)


@lru_cache(maxsize=4096)
def _gpus_of_spec(spec: str) -> int:
    try:
        return gpus_per_run(Workload.model_validate_json(spec))
    except ValueError:  # stored by another version and no longer valid: the reconciler fails it
        return 0


def _refuse(now: bool, message: str) -> QuotaRefusal:
    return QuotaRefusal(Rejection(Reason.QUOTA, "quotas", message), now)


def check_quota(
    quotas: Quotas, store: Store, tenant: str, workload: Workload
) -> QuotaRefusal | None:
    """``None`` when ``tenant`` may submit ``workload`` now, else why not."""
    runs = workload.replicas
    gpus = gpus_per_run(workload) * runs
    if runs > quotas.replicas:
        return _refuse(
            False,
            f"replicas: {runs} asked, and this server takes at most {quotas.replicas} per "
            "submission (its --max-replicas); submit fewer replicas",
        )
    if runs > quotas.active_runs:
        return _refuse(
            False,
            f"replicas: {runs} runs asked, and a tenant may have at most {quotas.active_runs} "
            "unfinished (the server's --max-active-runs); submit fewer replicas",
        )
    if gpus > quotas.gpus:
        return _refuse(
            False,
            f"resources: {gpus} GPUs asked, and a tenant may hold at most {quotas.gpus} "
            "(the server's --max-gpus); ask for fewer GPUs, nodes or replicas",
        )
    active = store.count(UNFINISHED, tenant=tenant)
    if active + runs > quotas.active_runs:
        return _refuse(
            True,
            f"tenant {tenant} has {active} unfinished runs, and may have at most "
            f"{quotas.active_runs} (the server's --max-active-runs): this submission of "
            f"{runs} fits once some of them finish or are cancelled",
        )
    if gpus:
        held = sum(_gpus_of_spec(spec) * n for spec, n in store.unfinished(tenant))
        if held + gpus > quotas.gpus:
            return _refuse(
                True,
                f"tenant {tenant} has unfinished runs asking for {held} GPUs, and may hold at "
                f"most {quotas.gpus} (the server's --max-gpus): this submission of {gpus} "
                "fits once some of them finish or are cancelled",
            )
    return None
