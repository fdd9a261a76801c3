"""The passive half of a round: site health, what the sites report, and adopting it.

Every attempt the store believes is launching or running is observed, one
``observe`` call per site, and what its backend says moves its run: running,
succeeded, failed (recovering elsewhere), preempted, cancelled; an attempt
on a site that went down is cancelled there and its run recovers elsewhere;
an attempt recorded but unknown to its backend is launched again (a launch
is idempotent by attempt id). An attempt its backend could not observe (a
failed ``squeue``) keeps its state: it may be running, and launching it
elsewhere would run it twice; unless its site is down, as for a live one.

A site whose ``health`` or ``observe`` raises is left alone for the round:
its attempts keep their state until a later round sees them. Observations
are written in one batch per round, and only what changed since the last
one recorded.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

from archipel.backends import AttemptState, Observation, SiteHealth
from archipel.controlplane._launch import Launcher
from archipel.controlplane._records import AttemptUpdate, RunView
from archipel.controlplane._round import Round, error_text
from archipel.controlplane._sites import Site
from archipel.controlplane._store import Store
from archipel.core import RunState

log = logging.getLogger("archipel.reconciler")

#: what was last recorded of an attempt: (state, exit code, host)
_Seen = tuple[AttemptState, int | None, str | None]


class Observer:
    """Observes the sites and adopts what they report, for the reconciler's rounds."""

    def __init__(self, store: Store, sites: Mapping[str, Site], launcher: Launcher) -> None:
        self.store = store
        self.sites = sites
        self.launcher = launcher
        self._known: dict[str, _Seen] = {}  # attempt -> what was last recorded of it
        self._observed: list[AttemptUpdate] = []  # this round's changes, not written yet
        self._unreachable: set[str] = set()  # sites whose health check raised this round

    def health(self, rnd: Round) -> None:
        """Ask every site for its health; one whose check raises is unreachable this round."""
        self._unreachable.clear()
        for name, site in self.sites.items():
            try:
                rnd.health[name] = site.backend.health()
            except Exception as exc:
                log.exception("site %s: health check raised; it is left alone this round", name)
                self._unreachable.add(name)
                rnd.health[name] = SiteHealth(False, f"health check raised {error_text(exc)}")

    def observe(self, rnd: Round, active: Sequence[RunView]) -> None:
        """Observe the attempts of ``active`` runs, adopt what is seen, record it in a batch."""
        by_site: dict[str, list[RunView]] = defaultdict(list)
        for run in active:
            if run.site is not None and run.attempt_id is not None:
                by_site[run.site].append(run)
        for site_name, runs in by_site.items():
            self._observe_site(rnd, site_name, runs)
        try:
            self.store.update_attempts(self._observed)
        except Exception:  # not recorded: forget them, so the next round writes them again
            for update in self._observed:
                self._known.pop(update.attempt_id, None)
            raise
        finally:
            self._observed.clear()

    def _observe_site(self, rnd: Round, site_name: str, runs: Sequence[RunView]) -> None:
        site = self.sites.get(site_name)
        if site is None:
            for run in runs:
                detail = f"site {site_name} is no longer declared"
                rnd.move(run, RunState.RECOVERING, detail, block=site_name)
            return
        if site_name in self._unreachable:
            return  # its health check raised: leave its attempts as they are this round
        try:
            seen = site.backend.observe([r.attempt_id for r in runs if r.attempt_id])
        except Exception as exc:  # the site's fault, not one run's: skip it this round
            log.exception("site %s: observe raised; its attempts keep their state", site_name)
            rnd.health[site_name] = SiteHealth(False, f"observe raised {error_text(exc)}")
            return
        rnd.report.observed += len(seen)
        unobserved = [o for o in seen.values() if o.state is AttemptState.UNOBSERVED]
        if unobserved:
            log.warning(
                "site %s: %d attempts could not be observed (%s); they keep their state",
                site_name,
                len(unobserved),
                unobserved[0].reason,
            )
        for run in runs:
            try:
                assert run.attempt_id is not None
                self._adopt(rnd, run, seen[run.attempt_id], rnd.health[site_name])
            except Exception as exc:
                rnd.fault(run, f"observing its attempt on {site_name}", exc)

    def _note(self, attempt_id: str, obs: Observation) -> None:
        """Queue what was observed of an attempt, if it changed (one batch per round)."""
        seen = (obs.state, obs.exit_code, obs.host)
        unsaid = obs.state is AttemptState.UNKNOWN or obs.state is AttemptState.UNOBSERVED
        if unsaid or self._known.get(attempt_id) == seen:
            return
        self._observed.append(
            AttemptUpdate(
                attempt_id, obs.state, obs.backend_id, obs.exit_code, obs.reason, obs.host
            )
        )
        self._known[attempt_id] = seen

    def _adopt(self, rnd: Round, run: RunView, obs: Observation, health: SiteHealth) -> None:
        assert run.attempt_id is not None
        assert run.site is not None
        self._note(run.attempt_id, obs)
        state = obs.state
        if state is AttemptState.UNOBSERVED:
            # The backend could not say (a failed squeue): the attempt may well be running,
            # so it is not launched again elsewhere, unless its whole site is down.
            if not health.healthy:
                self._site_down(rnd, run, health.reason)
        elif state is AttemptState.RUNNING or state is AttemptState.PENDING:
            if not health.healthy:  # the site went down under a live attempt: move it
                self._site_down(rnd, run, health.reason)
            elif state is AttemptState.RUNNING and run.state is RunState.LAUNCHING:
                rnd.move(run, RunState.RUNNING, f"running on {run.site} ({obs.backend_id})")
        elif state is AttemptState.SUCCEEDED:
            rnd.move(run, RunState.SUCCEEDED, f"exited 0 on {run.site}")
        elif state is AttemptState.FAILED:
            detail = f"attempt failed on {run.site}: {obs.reason or 'no reason given'}"
            rnd.move(run, RunState.RECOVERING, detail, block=run.site)
        elif state is AttemptState.PREEMPTED:
            detail = f"attempt lost on {run.site}: {obs.reason or 'preempted'}"
            rnd.move(run, RunState.PREEMPTED, detail, block=run.site)
        elif state is AttemptState.CANCELLED:
            rnd.move(run, RunState.CANCELLED, f"cancelled on {run.site}")
        elif state is AttemptState.UNKNOWN and run.state is RunState.LAUNCHING:
            self.launcher.launch(rnd, run)  # recorded but maybe never launched: idempotent
        elif state is AttemptState.UNKNOWN:
            detail = f"site {run.site} no longer knows attempt {run.attempt_id}"
            if rnd.move(run, RunState.PREEMPTED, detail, block=run.site):
                self._ended(run.attempt_id, AttemptState.PREEMPTED, detail)

    def _site_down(self, rnd: Round, run: RunView, why: str | None) -> None:
        """The run's site went down under its live attempt: cancel it there, recover the run."""
        assert run.attempt_id is not None
        assert run.site is not None
        detail = f"site {run.site} went down ({why}); attempt cancelled there"
        try:
            self.sites[run.site].backend.cancel(run.attempt_id)
        except OSError as exc:  # unreachable, as a site that is down may well be
            log.warning("run %s: cancelling on %s raised %s", run.id, run.site, exc)
            detail = (
                f"site {run.site} went down ({why}); cancelling the attempt there "
                f"raised {error_text(exc)}, so it may still be running there"
            )
        if rnd.move(run, RunState.RECOVERING, detail, block=run.site):
            self._ended(run.attempt_id, AttemptState.CANCELLED, detail)

    def _ended(self, attempt_id: str, state: AttemptState, reason: str) -> None:
        """Record that an attempt the run left behind has ended (it is observed no more)."""
        self._observed = [u for u in self._observed if u.attempt_id != attempt_id]
        self._known.pop(attempt_id, None)
        self.store.update_attempt(AttemptUpdate(attempt_id, state, reason=reason))
