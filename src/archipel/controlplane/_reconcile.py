"""The reconciler: observe the sites, adopt what they report, then act.

One :meth:`Reconciler.step` is a whole round (a :class:`Round` holds what it
learns and does); :meth:`Reconciler.run_forever` runs rounds until it is told
to stop:

1. **observe** every attempt the store believes is launching or running, one
   ``observe`` call per site, and the health of every site;
2. **adopt**: record what backends say and move runs accordingly (running,
   succeeded, failed, preempted; an attempt on a site that went down is
   cancelled there and its run recovers elsewhere). Both are
   :mod:`archipel.controlplane._observe`;
3. **act**: runs that need a site get one (placing -> launching, with the
   attempt recorded *before* the backend is called, so a crash in between is
   healed by an idempotent relaunch: :mod:`archipel.controlplane._launch`),
   runs to recover are re-placed with the failed sites blocked until the
   restart budget is spent;
4. **sweep**, every ``retention.every``: uploaded workdir archives that no
   unfinished run names, and no run that ended within the grace period, are
   removed (:class:`archipel.controlplane._workdirs.Retention`).

The replicas of a service submitted with ``replicas: N`` are a group of runs:
each is placed, recovered and cancelled on its own, but a run of a group only
goes to sites its ``spread`` rule allows given where its siblings are now
(see :mod:`archipel.controlplane._spread`); when none is free it waits in
``pending`` with the rule named in its message.

**Fairness.** A round acts on at most ``max_runs_per_round`` waiting runs
(pending, recovering, preempted, or left placing by a crash), so one burst of
submissions cannot stall the loop: the rest wait for the next rounds. They
are taken across tenants in turns, by dominant share
(:mod:`archipel.controlplane._fairness`).

**Faults stay with their run.** Whatever a backend (or the placement of one
run) raises while one run is handled, that run alone goes to ``failed`` with
the error in its history, its attempt is cancelled if it may be running, the
traceback is logged, and the round goes on with the others. An ``OSError``
from a launch (the site is unreachable, not the run wrong) is a retryable
launch failure instead: the site is blocked for that run, which is re-placed
elsewhere within its restart budget. A site whose ``health`` or ``observe``
raises is left alone for the round. Only the store failing
(:class:`sqlalchemy.exc.OperationalError`: nothing could record anything)
ends the round, and :meth:`Reconciler.run_forever` logs it and tries again
at the next one.

Every move goes through :meth:`Store.transition`, which checks the lifecycle
table and the run's version: two control planes reconciling the same store
never both move a run, and a backend launch is idempotent by attempt id, so
no run is launched twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from archipel.backends import AttemptState, SiteHealth
from archipel.controlplane._fairness import Capacity, Shares, in_turns
from archipel.controlplane._launch import Launcher, free_port
from archipel.controlplane._observe import Observer
from archipel.controlplane._placement import SiteChoice, SitePlacer, SiteState
from archipel.controlplane._records import AttemptUpdate, NewAttempt, RunView, now
from archipel.controlplane._round import Round, StepReport, error_text
from archipel.controlplane._sites import Site
from archipel.controlplane._spread import Where, group_state, spread_exclusions
from archipel.controlplane._store import Store
from archipel.controlplane._workdirs import TENANT_BYTES, Retention, Workdirs
from archipel.core import Reason, RunState

log = logging.getLogger("archipel.reconciler")

_ACTIVE = (RunState.LAUNCHING, RunState.RUNNING)
_TO_ACT = (RunState.PENDING, RunState.PLACING, RunState.RECOVERING, RunState.PREEMPTED)

#: how many waiting runs one round acts on, by default (see :class:`Reconciler`)
MAX_RUNS_PER_ROUND = 100


def _down(name: str, health: SiteHealth) -> str:
    return f"{name} down ({health.reason})" if health.reason else f"{name} down"


class Reconciler:
    """Drives runs through their lifecycle against real sites."""

    def __init__(
        self,
        store: Store,
        sites: Mapping[str, Site],
        placer: SitePlacer,
        checkpoint_root: Path,
        *,
        pick_port: Callable[[], int] = free_port,
        max_runs_per_round: int = MAX_RUNS_PER_ROUND,
        workdirs: Path | None = None,
        retention: Retention | None = None,
        workdir_quota: int = TENANT_BYTES,
        clock: Callable[[], datetime] = now,
    ) -> None:
        if max_runs_per_round < 1:
            raise ValueError(f"max_runs_per_round must be at least 1, not {max_runs_per_round}")
        self.store = store
        self.sites = dict(sites)
        self.placer = placer
        self.checkpoint_root = Path(checkpoint_root)
        # uploaded workdir archives, <tenant>/<sha256>.tar.gz (default: beside the checkpoints)
        self.workdirs = Workdirs(
            workdirs or self.checkpoint_root.parent / "workdirs", workdir_quota
        )
        self.retention = retention or Retention()
        self.clock = clock  # naive UTC, as the store keeps times
        self._swept: datetime | None = None  # when the workdirs were last swept
        self.max_runs_per_round = max_runs_per_round
        self.launcher = Launcher(store, self.sites, self.checkpoint_root, self.workdirs, pick_port)
        self.observer = Observer(store, self.sites, self.launcher)
        self._capacity = Capacity(self.sites)

    # -- the loop ----------------------------------------------------------------

    def run_forever(
        self,
        stop: threading.Event,
        interval: float,
        may_reconcile: Callable[[], bool] | None = None,
    ) -> None:
        """Run a round every ``interval`` seconds until ``stop`` is set.

        A round that raises (the store unreachable, a bug) is logged and the next
        one runs as usual. Setting ``stop`` ends the loop once the round under
        way, if any, is over: nothing is left half-recorded. ``may_reconcile``,
        asked before each round, lets replicas on one database take turns (only
        the holder of the lease reconciles, see ``_lease``); without it every
        round runs.
        """
        while not stop.is_set():
            if may_reconcile is None or may_reconcile():
                self._round_logged()
            stop.wait(interval)

    def _round_logged(self) -> None:
        try:
            report = self.step()
        except Exception:  # a bad round must not stop the loop: log it, try again
            log.exception("reconcile round failed")
            return
        if report.transitions or report.conflicts:
            log.info(
                "round: %d transitions, %d launched, %d failed by a fault, %d lost to "
                "another control plane, sites down: %s, %.3f s",
                report.transitions,
                report.launched,
                report.faults,
                report.conflicts,
                ", ".join(report.unhealthy_sites) or "none",
                report.seconds,
            )

    # -- the round ---------------------------------------------------------------

    def step(self) -> StepReport:
        """One round: observe and adopt, then act on the waiting runs."""
        started = time.perf_counter()
        rnd = Round(self.store, self.sites)
        self.observer.health(rnd)
        active = self.store.runs(states=_ACTIVE, limit=1_000_000)
        self.observer.observe(rnd, active)
        rnd.report.unhealthy_sites = sorted(n for n, h in rnd.health.items() if not h.healthy)
        shares = self._capacity.shares()
        for run in active:
            latest = rnd.after.get(run.id, run)
            if latest.state.active and latest.site:
                rnd.busy[latest.site] += 1
                shares.hold(latest)
        self._act_fairly(rnd, shares)
        self._sweep_workdirs(rnd)
        rnd.report.seconds = time.perf_counter() - started
        return rnd.report

    def _act_fairly(self, rnd: Round, shares: Shares) -> None:
        """Act on at most ``max_runs_per_round`` waiting runs, in turns across tenants.

        Each tenant's queue is its oldest waiting runs (at most the bound); a turn
        takes one run from every tenant that has one left, the tenant with the
        smallest dominant share first, so a tenant with thousands of waiting runs
        gets one run per turn, like a tenant with one.
        """
        queues = self.store.queued(_TO_ACT, self.max_runs_per_round)
        for run in in_turns(queues, shares.of, self.max_runs_per_round):
            rnd.report.acted += 1
            try:
                self._act(rnd, run)
            except Exception as exc:
                rnd.fault(run, "placing or launching it", exc)
            latest = rnd.after.get(run.id)
            if latest is not None and latest.state.active and latest.site:
                shares.hold(latest)

    def _sweep_workdirs(self, rnd: Round) -> None:
        """Every ``retention.every``, remove the workdir archives no run needs any more.

        After the act phase: every run launched this round is recorded as launching
        by then, so its archive is kept. A failing disk is logged, not the round's end.
        """
        at = self.clock()
        if self._swept is not None and at - self._swept < self.retention.every:
            return
        self._swept = at
        try:
            removed = self.workdirs.sweep(at, self.retention, self.store.workdirs_named)
        except OSError:
            log.exception("sweeping the workdir archives failed; trying again later")
            return
        rnd.report.workdirs_removed = len(removed)

    # -- act ---------------------------------------------------------------------

    def _act(self, rnd: Round, run: RunView) -> None:
        """Place and launch ``run``; a launch the site refused (no capacity, a quota, the
        site unreachable) goes to the next site in the same round, not a round later,
        each site tried once at most."""
        for _ in range(max(1, len(self.sites))):
            self._act_once(rnd, run)
            latest = rnd.after.get(run.id)
            if latest is None or latest.state is not RunState.RECOVERING:
                return
            # refused at launch (see Launcher._record): on to a site not refused yet, if
            # one is free now; else the next round decides (waits, or starts over)
            if self._choose(rnd, latest).site is None:
                return
            run = latest

    def _act_once(self, rnd: Round, run: RunView) -> None:
        moved: RunView | None = run
        if run.state in (RunState.PREEMPTED, RunState.RECOVERING):
            moved = self._recover(rnd, run)
        choice = None
        if moved is not None and moved.state is RunState.PENDING:
            choice = self._choose(rnd, moved)
            if choice.waits:  # no site can take it now: say why, once per reason
                self._say_waiting(moved, choice)
                return
            moved = rnd.move(moved, RunState.PLACING, "placing")
        if moved is not None and moved.state is RunState.PLACING:
            self._place(rnd, moved, choice or self._choose(rnd, moved))

    def _recover(self, rnd: Round, run: RunView) -> RunView | None:
        """A run to recover back to placing, or failed once its restart budget is spent."""
        if run.restarts >= run.max_restarts:
            last = f"; last: {run.message}" if run.message else ""
            spent = f"restart budget spent ({run.restarts} of {run.max_restarts}){last}"
            rnd.move(run, RunState.FAILED, spent)
            return None
        if run.state is RunState.PREEMPTED:
            moved = rnd.move(run, RunState.RECOVERING, "recovering")
            if moved is None:
                return None
            run = moved
        return rnd.move(
            run,
            RunState.PLACING,
            f"restart {run.restarts + 1} of {run.max_restarts}; blocked: "
            f"{', '.join(run.blocked_sites) or 'none'}",
            restarts=run.restarts + 1,
        )

    def _say_waiting(self, run: RunView, choice: SiteChoice) -> None:
        """Set a waiting run's message to why it waits, unless it says so already."""
        waiting = f"waiting for a site: {choice.explain()}"
        if run.message != waiting:
            self.store.set_message(run, waiting)

    def _choose(self, rnd: Round, run: RunView, blocked: bool = True) -> SiteChoice:
        """One engine call: the site for ``run`` now, and why every other site lost
        (``blocked=False``: as if no site had lost an attempt of it)."""
        state = SiteState(
            blocked={n: f"{n} blocked after failures" for n in run.blocked_sites}
            if blocked
            else {},
            down={n: _down(n, h) for n, h in rnd.health.items() if not h.healthy},
            full={
                n: f"{n} full ({rnd.busy[n]} of {site.spec.slots} slots taken)"
                for n, site in self.sites.items()
                if rnd.busy.get(n, 0) >= site.spec.slots
            },
            spread={n: f"{n} kept off by {why}" for n, why in self._excluded(rnd, run).items()},
        )
        return self.placer.place(run.workload, state)

    def _place(self, rnd: Round, run: RunView, choice: SiteChoice) -> None:
        """Record the chosen site's attempt and launch it; or wait, or fail, saying why.

        Sites where an attempt of the run was lost are avoided while another site may
        take it. When every site that may is one of them, the run starts over with none
        blocked (its restart budget still bounds the retries): a site lost to an outage
        that is repaired since, or the only site of its provider, is worth another try,
        and a run must not fail for having been unlucky everywhere once.
        """
        fields: dict[str, Any] = {}
        if choice.site is None and not choice.waits and run.blocked_sites:
            retry = self._choose(rnd, run, blocked=False)
            if retry.site is not None or retry.waits:
                choice, fields["blocked_sites"] = retry, ()
        if choice.waits:
            waiting = f"waiting for a site: {choice.explain()}"
            rnd.move(run, RunState.PENDING, waiting, **fields)  # the message too
            return
        if choice.site is None:
            why = choice.explain(without=(Reason.SITE_BLOCKED,))
            if run.blocked_sites:
                why += f" (blocked after failures: {', '.join(run.blocked_sites)})"
            rnd.move(run, RunState.FAILED, f"no site can run it: {why}")
            return
        number = max((a.number for a in self.store.attempts(run.id)), default=0) + 1
        serve = run.workload.serve
        moved = rnd.move(
            run,
            RunState.LAUNCHING,
            f"placed on {choice.site} (attempt {number})",
            attempt=NewAttempt(
                f"{run.id}-a{number}", number, choice.site, self.sites[choice.site].spec.terms()
            ),
            port=None if serve is None else serve.port or self.launcher.new_port(),
            **fields,
        )
        if moved is not None:
            rnd.busy[choice.site] += 1
            self.launcher.launch(rnd, moved)

    def _excluded(self, rnd: Round, run: RunView) -> dict[str, str]:
        """Sites the run's spread rule keeps it off now, with why (nothing outside a group).

        A group is read once a round, with this round's own moves laid over it: placing
        each of a service's N replicas does not read its N siblings again.
        """
        workload = run.workload
        if run.group_id is None or workload.spread is None:
            return {}
        group = rnd.groups.get(run.group_id)
        if group is None:
            group = self.store.runs(group=run.group_id, limit=100_000)
            rnd.groups[run.group_id] = group
        siblings = [
            (r.id, r.state.active, r.state.terminal, r.site)
            for r in (rnd.after.get(r.id, r) for r in group)
        ]
        holders, unplaced = group_state(run.id, siblings)
        where = {n: Where(s.spec.provider, s.spec.country) for n, s in self.sites.items()}
        return spread_exclusions(workload.spread, workload.replicas, where, holders, unplaced)

    # -- cancel ------------------------------------------------------------------

    def cancel_latest(self, run: RunView, tries: int = 5) -> RunView | None:
        """Cancel ``run``, reading it again and retrying while it keeps moving under the
        cancel (a round may move it meanwhile); ``None`` after ``tries`` such races."""
        for _ in range(tries):
            done = self.cancel(run)
            if done is not None:
                return done
            latest = self.store.get(run.id)
            assert latest is not None  # runs are never deleted
            run = latest
        return None

    def cancel(self, run: RunView) -> RunView | None:
        """Cancel a run: its attempt (if any) on its backend, then the run.

        ``None`` when the run moved since it was read (read it again and retry).
        """
        if run.state.terminal:
            return run
        detail = "cancelled by the user"
        stopped = False
        if run.state.active and run.attempt_id and run.site in self.sites:
            try:
                self.sites[run.site].backend.cancel(run.attempt_id)
                stopped = True
            except Exception as exc:  # the user's decision stands; say what is left behind
                log.exception("run %s: cancelling attempt %s raised", run.id, run.attempt_id)
                detail += (
                    f"; cancelling attempt {run.attempt_id} on {run.site} raised "
                    f"{error_text(exc)}, so it may still be running there"
                )
        moved = Round(self.store, self.sites).move(run, RunState.CANCELLED, detail)
        if moved is not None and stopped and run.attempt_id is not None:
            # a finished run's attempt is observed no more: record its end now
            self.store.update_attempt(
                AttemptUpdate(run.attempt_id, AttemptState.CANCELLED, reason=detail)
            )
        return moved
