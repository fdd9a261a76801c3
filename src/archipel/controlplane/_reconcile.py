"""The reconciler: observe the sites, adopt what they report, then act.

One :meth:`Reconciler.step` is a whole round:

1. **observe** every attempt the store believes is launching or running, one
   ``observe`` call per site, and the health of every site;
2. **adopt**: record what backends say and move runs accordingly (running,
   succeeded, failed, preempted; an attempt on a site that went down is
   cancelled there and its run recovers elsewhere);
3. **act**: runs that need a site get one (placing -> launching, with the
   attempt recorded *before* the backend is called, so a crash in between is
   healed by an idempotent relaunch), runs to recover are re-placed with the
   failed sites blocked until the restart budget is spent.

The replicas of a service submitted with ``replicas: N`` are a group of runs:
each is placed, recovered and cancelled on its own, but a run of a group only
goes to sites its ``spread`` rule allows given where its siblings are now
(see :mod:`archipel.controlplane._spread`); when none is free it waits in
``pending`` with the rule named in its message.

An inference service (a workload with ``serve``) is told where to listen:
``ARCHIPEL_PORT`` and ``PORT`` carry ``serve.port``, or else a port picked per
attempt by :func:`free_port` and recorded with the attempt *before* the launch,
so a relaunch after a crash gets the same one. The host it runs on is whatever
its backend observes (a Slurm node), recorded with the other observations.
It also gets ``ARCHIPEL_SERVICE_KEY``, the credential issued to that service
alone at submission: callers that do not present it (``Authorization: Bearer
<key>``) may be refused; the routes give it only to the tokens entitled to them.
:func:`free_port` only knows this machine: on a remote Slurm node a port free
here is very likely, not certainly, free there. A service that cannot bind its
port fails, and its run is recovered like any failed attempt; set
``serve.port`` to a port reserved for services on such sites.

**Fairness.** A round acts on at most ``max_runs_per_round`` waiting runs
(pending, recovering, preempted, or left placing by a crash), so one burst of
submissions cannot stall the loop: the rest wait for the next rounds. They
are taken across tenants in turns: each tenant's oldest runs first, one run
per tenant per turn, and within a turn the tenant with the smallest dominant
share first (the larger of its share of the declared slots and of the
declared GPUs held by its active runs, counting what this round has placed).

**Faults stay with their run.** Whatever a backend (or the placement of one
run) raises while one run is handled, that run alone goes to ``failed`` with
the error in its history, its attempt is cancelled if it may be running, the
traceback is logged, and the round goes on with the others. An ``OSError``
from a launch (the site is unreachable, not the run wrong) is a retryable
launch failure instead: the site is blocked for that run, which is re-placed
elsewhere within its restart budget. A site whose ``health`` or ``observe``
raises is left alone for the round: nothing is placed there and its attempts
keep their state until a later round sees them. Only the store failing
(:class:`sqlalchemy.exc.OperationalError`: nothing could record anything)
ends the round, and the server's loop logs it and tries again.

Every move goes through :meth:`Store.transition`, which checks the lifecycle
table and the run's version: two control planes reconciling the same store
never both move a run, and a backend launch is idempotent by attempt id, so
no run is launched twice.
"""

from __future__ import annotations

import heapq
import logging
import socket
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from archipel.backends import AttemptState, LaunchRequest, LaunchResult, Observation, SiteHealth
from archipel.controlplane._placement import SiteChoice, SitePlacer, SiteState
from archipel.controlplane._sites import Site
from archipel.controlplane._spread import Where, group_state, spread_exclusions
from archipel.controlplane._store import AttemptUpdate, NewAttempt, RunView, Store
from archipel.core import Reason, RunSpec, RunState, parse_accelerator_spec

log = logging.getLogger("archipel.reconciler")
_T = TypeVar("_T")

_ACTIVE = (RunState.LAUNCHING, RunState.RUNNING)
_TO_ACT = (RunState.PENDING, RunState.PLACING, RunState.RECOVERING, RunState.PREEMPTED)

#: how many waiting runs one round acts on, by default (see :class:`Reconciler`)
MAX_RUNS_PER_ROUND = 100


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, fit for a history entry (no NUL, bounded)."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text if len(text) <= 2000 else text[:2000] + " [...]"


def _gpus_per_slot(accelerators: str) -> float:
    """GPUs one slot of a site offers (``cpu:N`` is none)."""
    offered = parse_accelerator_spec(accelerators)
    return 0.0 if offered.model.strip().lower() == "cpu" else offered.count


def _down(name: str, health: SiteHealth) -> str:
    return f"{name} down ({health.reason})" if health.reason else f"{name} down"


def free_port() -> int:
    """A TCP port free on this machine now: bind port 0 on 127.0.0.1, read it, close.

    Free *now*: another process may take it before the service binds it (the
    attempt then fails and is recovered), and a remote node is not this machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_turns(
    queues: Mapping[str, Sequence[_T]], share: Callable[[str], float], limit: int
) -> Iterator[_T]:
    """At most ``limit`` items of ``queues`` (tenant -> its items in order), in turns.

    A turn takes the next item of every tenant that has one left, the tenant with
    the smallest ``share`` first (ties by name). ``share`` is asked again after
    each item, so what the caller did with it (a run placed) counts at once.
    """
    left = {tenant: deque(items) for tenant, items in queues.items() if items}
    turns = [(0, share(t), t) for t in left]
    heapq.heapify(turns)
    for _ in range(limit):
        if not turns:
            return
        turn, _, tenant = heapq.heappop(turns)
        yield left[tenant].popleft()
        if left[tenant]:
            heapq.heappush(turns, (turn + 1, share(tenant), tenant))


@dataclass
class StepReport:
    """What one round did (for logs, tests and benchmarks)."""

    observed: int = 0
    transitions: int = 0
    launched: int = 0
    conflicts: int = 0
    acted: int = 0  # waiting runs handled in the act phase (at most max_runs_per_round)
    faults: int = 0  # runs failed because handling them raised
    seconds: float = 0.0
    unhealthy_sites: list[str] = field(default_factory=list)


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
    ) -> None:
        if max_runs_per_round < 1:
            raise ValueError(f"max_runs_per_round must be at least 1, not {max_runs_per_round}")
        self.store = store
        self.sites = dict(sites)
        self.placer = placer
        self.checkpoint_root = Path(checkpoint_root)
        # uploaded workdir archives, <tenant>/<sha256>.tar.gz (default: beside the checkpoints)
        self.workdirs = Path(workdirs) if workdirs else self.checkpoint_root.parent / "workdirs"
        self.pick_port = pick_port
        self.max_runs_per_round = max_runs_per_round
        # what one slot holds, per site: (slots, GPUs), for the tenants' dominant shares
        self._slot = {n: (1.0, _gpus_per_slot(s.spec.accelerators)) for n, s in self.sites.items()}
        self._capacity = (
            float(sum(s.spec.slots for s in self.sites.values())),
            sum(s.spec.slots * self._slot[n][1] for n, s in self.sites.items()),
        )
        # attempt -> last recorded (state, exit code, host)
        self._known: dict[str, tuple[str, int | None, str | None]] = {}
        self._after: dict[str, RunView] = {}  # runs moved during this round's adoption
        self._observed: list[AttemptUpdate] = []
        # ports handed out lately: a service not listening yet leaves its port "free"
        self._given_ports: deque[int] = deque(maxlen=1024)
        self._unreachable: set[str] = set()  # sites whose health check raised this round

    # -- the round ---------------------------------------------------------------

    def step(self) -> StepReport:
        started = time.perf_counter()
        report = StepReport()
        self._after.clear()
        self._unreachable.clear()
        health = {name: self._health(site) for name, site in self.sites.items()}
        active = self.store.runs(states=_ACTIVE, limit=1_000_000)
        by_site: dict[str, list[RunView]] = defaultdict(list)
        for run in active:
            if run.site is not None and run.attempt_id is not None:
                by_site[run.site].append(run)
        for site_name, runs in by_site.items():
            site = self.sites.get(site_name)
            if site is None:
                for run in runs:
                    self._move(
                        report,
                        run,
                        RunState.RECOVERING,
                        f"site {site_name} is no longer declared",
                        block=site_name,
                    )
                continue
            if site_name in self._unreachable:
                continue  # its health check raised: leave its attempts as they are this round
            try:
                seen = site.backend.observe([r.attempt_id for r in runs if r.attempt_id])
            except Exception as exc:  # the site's fault, not one run's: skip it this round
                log.exception("site %s: observe raised; its attempts keep their state", site_name)
                health[site_name] = SiteHealth(False, f"observe raised {error_text(exc)}")
                continue
            report.observed += len(seen)
            for run in runs:
                try:
                    assert run.attempt_id is not None
                    self._adopt(
                        report,
                        run,
                        seen[run.attempt_id],
                        health[site_name].healthy,
                        health[site_name].reason,
                    )
                except Exception as exc:
                    self._fault(report, run, f"observing its attempt on {site_name}", exc)
        try:
            self.store.update_attempts(self._observed)
        except Exception:  # not recorded: forget them, so the next round writes them again
            for update in self._observed:
                self._known.pop(update.attempt_id, None)
            raise
        finally:
            self._observed.clear()
        report.unhealthy_sites = sorted(n for n, h in health.items() if not h.healthy)
        busy: dict[str, int] = defaultdict(int)  # active attempts per site after adoption
        held: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # tenant -> slots, GPUs
        for run in active:
            latest = self._after.get(run.id, run)
            if latest.state.active and latest.site:
                busy[latest.site] += 1
                self._hold(held, latest)
        self._act_fairly(report, health, busy, held)
        report.seconds = time.perf_counter() - started
        return report

    def _health(self, site: Site) -> SiteHealth:
        """The site's health; one whose check raises is unreachable for this round."""
        try:
            return site.backend.health()
        except Exception as exc:
            log.exception("site %s: health check raised; it is left alone this round", site.name)
            self._unreachable.add(site.name)
            return SiteHealth(False, f"health check raised {error_text(exc)}")

    # -- act fairly ----------------------------------------------------------------

    def _hold(self, held: dict[str, list[float]], run: RunView) -> None:
        """Count ``run``'s slot (and the GPUs of its site's slot) against its tenant."""
        slots, gpus = self._slot.get(run.site or "", (1.0, 0.0))
        held[run.tenant][0] += slots
        held[run.tenant][1] += gpus

    def _share(self, held: Mapping[str, list[float]], tenant: str) -> float:
        """The tenant's dominant share: the larger of its shares of the slots and the GPUs."""
        slots, gpus = held.get(tenant, (0.0, 0.0))
        total_slots, total_gpus = self._capacity
        return max(
            slots / total_slots if total_slots else 0.0,
            gpus / total_gpus if total_gpus else 0.0,
        )

    def _act_fairly(
        self,
        report: StepReport,
        health: Mapping[str, SiteHealth],
        busy: dict[str, int],
        held: dict[str, list[float]],
    ) -> None:
        """Act on at most ``max_runs_per_round`` waiting runs, in turns across tenants.

        Each tenant's queue is its oldest waiting runs (at most the bound); a turn
        takes one run from every tenant that has one left, the tenant with the
        smallest dominant share first, so a tenant with thousands of waiting runs
        gets one run per turn, like a tenant with one.
        """
        queues = self.store.queued(_TO_ACT, self.max_runs_per_round)
        for run in in_turns(queues, lambda t: self._share(held, t), self.max_runs_per_round):
            report.acted += 1
            try:
                self._act(report, run, health, busy)
            except Exception as exc:
                self._fault(report, run, "placing or launching it", exc)
            latest = self._after.get(run.id)
            if latest is not None and latest.state.active and latest.site:
                self._hold(held, latest)

    # -- faults ------------------------------------------------------------------

    def _fault(self, report: StepReport, run: RunView, doing: str, exc: Exception) -> None:
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
                self.store.update_attempt(
                    AttemptUpdate(current.attempt_id, AttemptState.FAILED, reason=text)
                )
                site = self.sites.get(current.site or "")
                if site is not None:
                    try:  # it may be running there: stop it (best effort)
                        site.backend.cancel(current.attempt_id)
                    except Exception:
                        log.exception(
                            "run %s: cancelling attempt %s raised", run.id, current.attempt_id
                        )
            if self._move(report, current, RunState.FAILED, f"{doing} raised {text}") is not None:
                report.faults += 1
        except OperationalError:
            raise
        except Exception:  # recording the failure failed too: log it, keep the round going
            log.exception("run %s: could not record its failure", run.id)

    # -- adopt -------------------------------------------------------------------

    def _adopt(
        self, report: StepReport, run: RunView, obs: Observation, healthy: bool, why: str | None
    ) -> None:
        assert run.attempt_id is not None
        assert run.site is not None
        seen = (obs.state.value, obs.exit_code, obs.host)
        if obs.state is not AttemptState.UNKNOWN and self._known.get(run.attempt_id) != seen:
            # write only what changed, in one batch per round
            self._observed.append(
                AttemptUpdate(
                    run.attempt_id, obs.state, obs.backend_id, obs.exit_code, obs.reason, obs.host
                )
            )
            self._known[run.attempt_id] = seen
        state = obs.state
        if state is AttemptState.RUNNING or state is AttemptState.PENDING:
            if not healthy:  # the site went down under a live attempt: move it
                detail = f"site {run.site} went down ({why}); attempt cancelled there"
                try:
                    self.sites[run.site].backend.cancel(run.attempt_id)
                except OSError as exc:  # unreachable, as a site that is down may well be
                    log.warning("run %s: cancelling on %s raised %s", run.id, run.site, exc)
                    detail = (
                        f"site {run.site} went down ({why}); cancelling the attempt there "
                        f"raised {error_text(exc)}, so it may still be running there"
                    )
                if self._move(report, run, RunState.RECOVERING, detail, block=run.site):
                    self._ended(run.attempt_id, AttemptState.CANCELLED, detail)
            elif state is AttemptState.RUNNING and run.state is RunState.LAUNCHING:
                self._move(
                    report, run, RunState.RUNNING, f"running on {run.site} ({obs.backend_id})"
                )
        elif state is AttemptState.SUCCEEDED:
            self._move(report, run, RunState.SUCCEEDED, f"exited 0 on {run.site}")
        elif state is AttemptState.FAILED:
            detail = f"attempt failed on {run.site}: {obs.reason or 'no reason given'}"
            self._move(report, run, RunState.RECOVERING, detail, block=run.site)
        elif state is AttemptState.PREEMPTED:
            detail = f"attempt lost on {run.site}: {obs.reason or 'preempted'}"
            self._move(report, run, RunState.PREEMPTED, detail, block=run.site)
        elif state is AttemptState.CANCELLED:
            self._move(report, run, RunState.CANCELLED, f"cancelled on {run.site}")
        elif state is AttemptState.UNKNOWN and run.state is RunState.LAUNCHING:
            self._launch(report, run)  # recorded but maybe never launched: launch is idempotent
        elif state is AttemptState.UNKNOWN:
            detail = f"site {run.site} no longer knows attempt {run.attempt_id}"
            if self._move(report, run, RunState.PREEMPTED, detail, block=run.site):
                self._ended(run.attempt_id, AttemptState.PREEMPTED, detail)

    # -- act ---------------------------------------------------------------------

    def _act(
        self,
        report: StepReport,
        run: RunView,
        health: Mapping[str, SiteHealth],
        busy: dict[str, int],
    ) -> None:
        if run.state in (RunState.PREEMPTED, RunState.RECOVERING):
            if run.restarts >= run.max_restarts:
                self._move(
                    report,
                    run,
                    RunState.FAILED,
                    f"restart budget spent ({run.restarts} of {run.max_restarts})"
                    + (f"; last: {run.message}" if run.message else ""),
                )
                return
            if run.state is RunState.PREEMPTED:
                moved = self._move(report, run, RunState.RECOVERING, "recovering")
                if moved is None:
                    return
                run = moved
            moved = self._move(
                report,
                run,
                RunState.PLACING,
                f"restart {run.restarts + 1} of {run.max_restarts}; blocked: "
                f"{', '.join(run.blocked_sites) or 'none'}",
                restarts=run.restarts + 1,
            )
            if moved is None:
                return
            run = moved
        choice = None
        if run.state is RunState.PENDING:
            choice = self._choose(run, health, busy)
            if choice.waits:  # no site can take it now: say why, once per reason
                waiting = f"waiting for a site: {choice.explain()}"
                if run.message != waiting:
                    self.store.set_message(run, waiting)
                return
            moved = self._move(report, run, RunState.PLACING, "placing")
            if moved is None:
                return
            run = moved
        if run.state is RunState.PLACING:
            self._place(report, run, choice or self._choose(run, health, busy), busy)

    def _choose(
        self, run: RunView, health: Mapping[str, SiteHealth], busy: Mapping[str, int]
    ) -> SiteChoice:
        """One engine call: the site for ``run`` now, and why every other site lost."""
        state = SiteState(
            blocked={n: f"{n} blocked after failures" for n in run.blocked_sites},
            down={n: _down(n, h) for n, h in health.items() if not h.healthy},
            full={
                n: f"{n} full ({busy[n]} of {site.spec.slots} slots taken)"
                for n, site in self.sites.items()
                if busy.get(n, 0) >= site.spec.slots
            },
            spread={n: f"{n} kept off by {why}" for n, why in self._excluded(run).items()},
        )
        return self.placer.place(run.workload, state)

    def _place(
        self, report: StepReport, run: RunView, choice: SiteChoice, busy: dict[str, int]
    ) -> None:
        if choice.waits:
            waiting = f"waiting for a site: {choice.explain()}"
            back = self._move(report, run, RunState.PENDING, waiting)
            if back is not None:
                self.store.set_message(back, waiting)
            return
        if choice.site is None:
            why = choice.explain(without=(Reason.SITE_BLOCKED,))
            if run.blocked_sites:
                why += f" (blocked after failures: {', '.join(run.blocked_sites)})"
            self._move(report, run, RunState.FAILED, f"no site can run it: {why}")
            return
        workload = run.workload
        number = len(self.store.attempts(run.id)) + 1
        attempt_id = f"{run.id}-a{number}"
        serve = workload.serve
        moved = self._move(
            report,
            run,
            RunState.LAUNCHING,
            f"placed on {choice.site} (attempt {number})",
            attempt=NewAttempt(attempt_id, number, choice.site),
            port=None if serve is None else serve.port or self._new_port(),
        )
        if moved is not None:
            busy[choice.site] += 1
            self._launch(report, moved)

    def _new_port(self) -> int:
        """A free port not handed out lately (a few tries, then whatever is free)."""
        port = self.pick_port()
        for _ in range(8):
            if port not in self._given_ports:
                break
            port = self.pick_port()
        self._given_ports.append(port)
        return port

    def _excluded(self, run: RunView) -> dict[str, str]:
        """Sites the run's spread rule keeps it off now, with why (nothing outside a group)."""
        workload = run.workload
        if run.group_id is None or workload.spread is None:
            return {}
        siblings = [
            (r.id, r.state.active, r.state.terminal, r.site)
            for r in self.store.runs(group=run.group_id, limit=100_000)
        ]
        holders, unplaced = group_state(run.id, siblings)
        where = {n: Where(s.spec.provider, s.spec.country) for n, s in self.sites.items()}
        return spread_exclusions(workload.spread, workload.replicas, where, holders, unplaced)

    def _launch(self, report: StepReport, run: RunView) -> None:
        assert run.attempt_id is not None
        assert run.site is not None
        site = self.sites.get(run.site)
        workload = run.workload
        spec = workload.run
        if site is None or spec is None:
            self._move(
                report,
                run,
                RunState.FAILED,
                "the workload has no run.command" if spec is None else "site vanished",
            )
            return
        checkpoint = self.checkpoint_root / run.id
        checkpoint.mkdir(parents=True, exist_ok=True)
        env = {
            **spec.env,
            "ARCHIPEL_RUN_ID": run.id,
            "ARCHIPEL_ATTEMPT_ID": run.attempt_id,
            "ARCHIPEL_CHECKPOINT_DIR": str(checkpoint),
            "ARCHIPEL_RESTART_COUNT": str(run.restarts),
            "ARCHIPEL_SITE": site.name,
            # the control plane's own Python: a command that needs Archipel (the example
            # service runs its fake model server) finds it even outside a virtualenv
            "ARCHIPEL_PYTHON": sys.executable,
            **(self._port_env(run.attempt_id) if workload.serve is not None else {}),
            # the service's own credential: it answers only callers that present it
            **({"ARCHIPEL_SERVICE_KEY": run.service_key} if run.service_key is not None else {}),
        }
        # what the chosen site offers (the alternative of the workload that matched it);
        # "cpu" is a slot, not a device a backend allocates
        offered = site.spec.accelerators
        gpus = None if offered.split(":")[0].strip().lower() == "cpu" else offered
        request = LaunchRequest(
            run.attempt_id,
            spec.command,
            env,
            None,
            gpus,
            workload.resources.nodes,
            writable=(str(checkpoint),),
            files=None if spec.workdir_sha256 is None else str(self.workdir(run.tenant, spec)),
        )
        try:
            result = site.backend.launch(request)
        except OSError as exc:  # the site is unreachable, not the run wrong: try elsewhere
            log.warning("run %s: launching on %s raised %s", run.id, site.name, exc)
            result = LaunchResult(run.attempt_id, False, error=error_text(exc), retryable=True)
        if result.ok:
            report.launched += 1
            # accepted by the backend, not seen running yet
            update = AttemptUpdate(run.attempt_id, AttemptState.PENDING, result.backend_id)
            self.store.update_attempt(update)
            return
        self.store.update_attempt(
            AttemptUpdate(run.attempt_id, AttemptState.FAILED, reason=result.error)
        )
        if result.retryable:
            self._move(
                report,
                run,
                RunState.RECOVERING,
                f"launch on {site.name} failed: {result.error}",
                block=site.name,
            )
        else:
            self._move(
                report, run, RunState.FAILED, f"launch on {site.name} failed: {result.error}"
            )

    def workdir(self, tenant: str, spec: RunSpec) -> Path:
        """Where the tenant's uploaded workdir archive of ``spec`` is kept."""
        return self.workdirs / tenant / f"{spec.workdir_sha256}.tar.gz"

    def _ended(self, attempt_id: str, state: AttemptState, reason: str) -> None:
        """Record that an attempt the run left behind has ended (it is observed no more)."""
        self._observed = [u for u in self._observed if u.attempt_id != attempt_id]
        self._known.pop(attempt_id, None)
        self.store.update_attempt(AttemptUpdate(attempt_id, state, reason=reason))

    def _port_env(self, attempt_id: str) -> dict[str, str]:
        """``ARCHIPEL_PORT`` and ``PORT`` for a service: the port recorded with its attempt."""
        attempt = self.store.attempt(attempt_id)
        if attempt is None or attempt.port is None:
            return {}
        return {"ARCHIPEL_PORT": str(attempt.port), "PORT": str(attempt.port)}

    # -- helpers -----------------------------------------------------------------

    def _move(
        self,
        report: StepReport,
        run: RunView,
        target: RunState,
        detail: str,
        block: str | None = None,
        **fields: object,
    ) -> RunView | None:
        if block is not None and block not in run.blocked_sites:
            fields["blocked_sites"] = (*run.blocked_sites, block)
        fields.setdefault("message", detail)  # a run's message is what last happened to it
        moved = self.store.transition(run, target, detail, **fields)  # type: ignore[arg-type]
        if moved is None:
            report.conflicts += 1
            log.info("run %s moved by someone else; skipping", run.id)
            return None
        report.transitions += 1
        self._after[run.id] = moved
        log.info("run %s: %s -> %s (%s)", run.id, run.state, target, detail)
        return moved

    def cancel(self, run: RunView) -> RunView | None:
        """Cancel a run: its attempt (if any) on its backend, then the run."""
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
        moved = self._move(StepReport(), run, RunState.CANCELLED, detail)
        if moved is not None and stopped and run.attempt_id is not None:
            # a finished run's attempt is observed no more: record its end now
            self.store.update_attempt(
                AttemptUpdate(
                    run.attempt_id, AttemptState.CANCELLED, reason="cancelled by the user"
                )
            )
        return moved
