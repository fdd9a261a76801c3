"""The lifecycle of a run: one table of allowed transitions, each with its event.

A *run* is one submitted workload being executed; it makes one or more
*attempts* (on a site, through a backend) until it succeeds, fails for good or
is cancelled. Every transition is checked against :data:`TRANSITIONS` and
recorded in the run's append-only history.
"""

from __future__ import annotations

from enum import StrEnum

from archipel.core._errors import ArchipelError


class RunState(StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"
    PLACING = "placing"
    LAUNCHING = "launching"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PREEMPTED = "preempted"
    RECOVERING = "recovering"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}

    @property
    def active(self) -> bool:
        """An attempt may exist on a backend (launching or running)."""
        return self in {RunState.LAUNCHING, RunState.RUNNING}


_S = RunState

#: (from, to) -> the event that causes it
TRANSITIONS: dict[tuple[RunState, RunState], str] = {
    (_S.PENDING, _S.PLACING): "the reconciler picks the run up",
    (_S.PENDING, _S.CANCELLED): "cancelled before placement",
    (
        _S.PENDING,
        _S.FAILED,
    ): "reconciling it raised (a spec no backend takes, or a bug): it alone fails",
    (_S.PLACING, _S.LAUNCHING): "a site was chosen and an attempt recorded",
    (_S.PLACING, _S.PENDING): "no site can take it now (capacity or health); retry later",
    (_S.PLACING, _S.FAILED): "no site will ever fit (hardware or policy), or placing it raised",
    (_S.PLACING, _S.CANCELLED): "cancelled while placing",
    (_S.LAUNCHING, _S.RUNNING): "the backend reports the attempt running",
    (_S.LAUNCHING, _S.SUCCEEDED): "the attempt finished before it was seen running",
    (
        _S.LAUNCHING,
        _S.FAILED,
    ): "the launch or the attempt failed for good, or the backend raised for it",
    (_S.LAUNCHING, _S.RECOVERING): "the launch failed in a way another site may not",
    (_S.LAUNCHING, _S.PREEMPTED): "the backend lost the attempt while starting it",
    (_S.LAUNCHING, _S.CANCELLED): "cancelled while launching",
    (_S.RUNNING, _S.SUCCEEDED): "the attempt exited 0",
    (_S.RUNNING, _S.FAILED): (
        "the attempt failed and no restart is left or allowed, or the backend raised for it"
    ),
    (_S.RUNNING, _S.RECOVERING): "the attempt failed with a retryable error or its site went down",
    (_S.RUNNING, _S.PREEMPTED): "the backend took the resources back or lost the node",
    (_S.RUNNING, _S.CANCELLED): "cancelled by the user",
    (_S.PREEMPTED, _S.RECOVERING): "a restart is left: re-place with the site blocked",
    (_S.PREEMPTED, _S.FAILED): "no restart left, or reconciling it raised",
    (_S.PREEMPTED, _S.CANCELLED): "cancelled after preemption",
    (_S.RECOVERING, _S.PLACING): "re-place with the failed sites blocked",
    (_S.RECOVERING, _S.FAILED): "the restart budget is spent, or re-placing it raised",
    (_S.RECOVERING, _S.CANCELLED): "cancelled while recovering",
}


class TransitionError(ArchipelError):
    """A transition that the lifecycle table does not allow (a bug, or a lost race)."""


def check_transition(current: RunState, target: RunState) -> str:
    """The event of an allowed transition; raise :class:`TransitionError` otherwise."""
    try:
        return TRANSITIONS[(current, target)]
    except KeyError:
        raise TransitionError(f"a run cannot go from {current} to {target}") from None
