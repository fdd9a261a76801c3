"""One reconcile round's context: what it did, the moves it recorded, the faults it met.

A :class:`Round` is created per :meth:`Reconciler.step` (and per cancellation),
so nothing in it outlives the round or is shared between threads. Every move
of a run goes through :meth:`Round.move`, which goes through
:meth:`Store.transition`: the lifecycle table and the run's version are checked
there, and a move another writer beat is counted as a conflict, not retried.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import OperationalError

from archipel.backends import AttemptState, SiteHealth
from archipel.controlplane._records import AttemptUpdate, RunView
from archipel.controlplane._sites import Site
from archipel.controlplane._store import Store
from archipel.core import RunState

log = logging.getLogger("archipel.reconciler")


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, fit for a history entry (no NUL, bounded)."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text if len(text) <= 2000 else text[:2000] + " [...]"


@dataclass
class StepReport:
    """What one round did (for logs, tests and benchmarks)."""

    observed: int = 0
    transitions: int = 0
    launched: int = 0
    conflicts: int = 0
    acted: int = 0  # waiting runs handled in the act phase (at most max_runs_per_round)
    faults: int = 0  # runs failed because handling them raised
    workdirs_removed: int = 0  # workdir archives the round's sweep removed
    seconds: float = 0.0
    unhealthy_sites: list[str] = field(default_factory=list)


@dataclass
class Round:
    """The store and sites one round works on, and what it learnt and did so far."""

    store: Store
    sites: Mapping[str, Site]
    report: StepReport = field(default_factory=StepReport)
    #: site name -> its health this round (a site whose check raised is unhealthy)
    health: dict[str, SiteHealth] = field(default_factory=dict)
    #: runs moved during this round, as they are now
    after: dict[str, RunView] = field(default_factory=dict)
    #: active attempts per site, after adoption and counting this round's launches
    busy: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: a service's replicas as read once this round (see ``after`` for this round's moves)
    groups: dict[str, list[RunView]] = field(default_factory=dict)

    def move(
        self,
        run: RunView,
        target: RunState,
        detail: str,
        block: str | None = None,
        **fields: object,
    ) -> RunView | None:
        """Move ``run`` to ``target`` (blocking ``block`` for it); ``None`` if beaten to it."""
        if block is not None and block not in run.blocked_sites:
            fields["blocked_sites"] = (*run.blocked_sites, block)
        fields.setdefault("message", detail)  # a run's message is what last happened to it
        moved = self.store.transition(run, target, detail, **fields)  # type: ignore[arg-type]
        if moved is None:
            self.report.conflicts += 1
            log.info("run %s moved by someone else; skipping", run.id)
            return None
        self.report.transitions += 1
        self.after[run.id] = moved
        log.info("run %s: %s -> %s (%s)", run.id, run.state, target, detail)
        return moved

    def fault(self, run: RunView, doing: str, exc: Exception) -> None:
        """Handling ``run`` raised: that run alone fails, with the error in its history.

        The store being unreachable is no run's fault: that ends the round.
        """
        if isinstance(exc, OperationalError):
            raise exc
        log.error(
            "run %s: %s raised; the run fails, the round goes on", run.id, doing, exc_info=exc
        )
        try:
            current = self.store.get(run.id)
            if current is None or current.state.terminal:
                return
            text = error_text(exc)
            if current.attempt_id is not None and current.state.active:
                self._abandon(current, current.attempt_id, text)
            if self.move(current, RunState.FAILED, f"{doing} raised {text}") is not None:
                self.report.faults += 1
        except OperationalError:
            raise
        except Exception:  # recording the failure failed too: log it, keep the round going
            log.exception("run %s: could not record its failure", run.id)

    def _abandon(self, run: RunView, attempt_id: str, text: str) -> None:
        """Record the attempt of a failing run as failed, and stop it (best effort)."""
        self.store.update_attempt(AttemptUpdate(attempt_id, AttemptState.FAILED, reason=text))
        site = self.sites.get(run.site or "")
        if site is None:
            return
        try:  # it may be running there: stop it
            site.backend.cancel(attempt_id)
        except Exception:
            log.exception("run %s: cancelling attempt %s raised", run.id, attempt_id)
