"""Study 3, the seed question: one organisation's GPU jobs under provider outages,
run by the real control plane on simulated sites, one strategy after another.

What is real and what is simulated:

- **Real**: the control plane's :class:`~archipel.controlplane.Store` (SQLite, in a
  temporary folder), :class:`~archipel.controlplane.Reconciler` (observe, adopt,
  recover, fair turns) and :class:`~archipel.controlplane.SitePlacer` (the
  placement engine under the strategy's policy). Every decision (which site, wait,
  refuse, recover elsewhere) is theirs; the simulation makes none.
- **Simulated**: the sites' backends (:class:`SimBackend`) on the kernel's virtual
  clock. A launched attempt runs for what remains of its job's work and succeeds; an
  outage of a provider takes all its sites down for its repair time and preempts
  their attempts; a preempted attempt keeps its work up to its last checkpoint
  (every ``checkpoint_minutes``), the rest is lost.
- **Rounds**: the reconciler runs at the first multiple of ``round_seconds`` at or
  after each event (an arrival, an end, an outage), until a round changes nothing.
  Between events a polling reconciler would see nothing new; the granularity adds at
  most ``round_seconds`` to each decision, as a polling interval does.

Strategies are configuration of that engine (which sites it may use, which
policy), never code paths of their own. The figures: cost (attempt time at each
site's price, exact), jobs done or refused, waits, lost GPU-hours, recovery time
after an outage, spend concentration, and **compliance violations**, judged by
:func:`violation`, a check written apart from the policy engine (it must find none).
"""

from __future__ import annotations

import fnmatch
import math
import random
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator
from sqlalchemy import event

from archipel.backends import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)
from archipel.controlplane import Reconciler, Site, SitePlacer, SiteSpec, Store
from archipel.core import (
    CatalogSnapshot,
    CloudActExposure,
    InputError,
    RunState,
    StrictModel,
    cross_rate,
    field_problems,
    parse_workload,
)
from archipel.policy import Policy
from archipel.sim._commit import (
    Commitments,
    CommitmentSpec,
    ScoreName,
    check_commitments,
    score_plugins,
)
from archipel.sim._kernel import Kernel
from archipel.sim._openb import JobTrace, TraceJob

HOUR = 3600.0
START = datetime(2026, 1, 1)  # the virtual clock's origin, as the store records times
#: the EU/EEA, written out here for the compliance check (independent of the policy data)
EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO".split()
)
#: classes the compliance check knows how to judge; a scenario may use only these
JUDGED = ("public", "health")


# -- the scenario -------------------------------------------------------------------------------


class Window(StrictModel):
    """One outage at a known time: ``at_hours`` after the first arrival, ``for_hours`` long."""

    at_hours: Annotated[float, Field(ge=0)]
    for_hours: Annotated[float, Field(gt=0)]


class OutageModel(StrictModel):
    """Outages of one provider: drawn (exponential times between failures and to repair,
    ``mtbf_hours`` and ``mttr_hours``), or at the given ``windows``, or both."""

    mtbf_hours: Annotated[float, Field(gt=0)] | None = None
    mttr_hours: Annotated[float, Field(gt=0)] | None = None
    windows: list[Window] = Field(default_factory=list)

    @model_validator(mode="after")
    def _drawn_or_given(self) -> OutageModel:
        if (self.mtbf_hours is None) != (self.mttr_hours is None):
            raise ValueError("give both mtbf_hours and mttr_hours, or neither")
        if self.mtbf_hours is None and not self.windows:
            raise ValueError("give mtbf_hours and mttr_hours, or windows, or both")
        return self


class StrategySpec(StrictModel):
    """A strategy: the sites the engine may use (names or ``*`` patterns; all if empty),
    and its score plugins with their weights (``price`` alone if none is named)."""

    sites: list[str] = Field(default_factory=list)
    scores: dict[ScoreName, Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=dict)


class TraceSpec(StrictModel):
    """The jobs: the openb trace's file and the window of its days to replay."""

    openb: str
    first_day: Annotated[float, Field(ge=0)] = 0
    days: Annotated[float, Field(gt=0, le=366)] = 1


class ScenarioSpec(StrictModel):
    name: str
    seed: int = 0
    trace: TraceSpec
    sites: list[dict[str, Any]]
    strategies: dict[str, StrategySpec]
    #: the share of jobs of each data class (drawn per job with the seed)
    data_classes: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"public": 1.0}
    )
    outages: dict[str, OutageModel] = Field(default_factory=dict)
    #: promises to spend with a provider over the simulated span (see ``_commit``)
    commitments: list[CommitmentSpec] = Field(default_factory=list)
    checkpoint_minutes: Annotated[float, Field(ge=0)] = 30
    round_seconds: Annotated[float, Field(gt=0)] = 60
    #: after the last arrival, how long the sites may run before the figures are taken
    drain_hours: Annotated[float, Field(ge=0)] = 24 * 7
    max_restarts: Annotated[int, Field(ge=0, le=1000)] = 50


@dataclass(frozen=True, slots=True)
class Scenario:
    spec: ScenarioSpec
    sites: tuple[SiteSpec, ...]
    jobs: JobTrace
    folder: Path  # where relative paths in the file were resolved


def parse_scenario(doc: Any, where: str, folder: Path, load: Callable[..., JobTrace]) -> Scenario:
    """A scenario document, checked whole, with every problem named by its field."""
    try:
        spec = ScenarioSpec.model_validate(doc)
    except ValidationError as exc:
        raise InputError(f"{where}: {'; '.join(field_problems(exc))}") from None
    sites = []
    for n, raw in enumerate(spec.sites):
        try:
            sites.append(SiteSpec.model_validate({"backend": "local", **raw}))
        except ValidationError as exc:
            raise InputError(f"{where}: sites[{n}]: {'; '.join(field_problems(exc))}") from None
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: sites: two sites share a name; give each its own")
    for name, strategy in spec.strategies.items():
        for pattern in strategy.sites:
            if not fnmatch.filter(names, pattern):
                raise InputError(
                    f"{where}: strategies.{name}.sites: {pattern!r} matches no site "
                    f"(the sites are {', '.join(names)})"
                )
    unknown = sorted(set(spec.data_classes) - set(JUDGED))
    if unknown or not any(spec.data_classes.values()):
        extra = f"; not {', '.join(unknown)}" if unknown else ""
        raise InputError(
            f"{where}: data_classes: give shares of {' and '.join(JUDGED)} "
            f"(the classes the compliance check judges){extra}"
        )
    providers = {s.provider for s in sites}
    check_commitments(spec.commitments, providers, where)
    for name, strategy in spec.strategies.items():
        if "commitment" in strategy.scores and not spec.commitments:
            raise InputError(
                f"{where}: strategies.{name}.scores: commitment needs commitments to burn; "
                "declare them under commitments, or drop the commitment score"
            )
    for provider in spec.outages:
        if provider not in providers:
            raise InputError(
                f"{where}: outages: {provider!r} is no site's provider "
                f"({', '.join(sorted(providers))})"
            )
    trace = Path(spec.trace.openb)
    trace = trace if trace.is_absolute() else folder / trace
    return Scenario(spec, tuple(sites), load(trace, spec.trace.first_day, spec.trace.days), folder)


# -- the simulated sites ------------------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    """One job's work, whichever attempt runs it."""

    name: str
    data_class: str
    work: float  # seconds of work in all
    done: float = 0.0  # seconds kept (checkpointed or finished)
    submitted: float = 0.0
    first_start: float | None = None
    finished: float | None = None
    stopped_at: float | None = None  # when its last attempt was preempted, if not relaunched yet
    running: float = 0.0  # at the horizon: how long its attempt has been running
    recoveries: list[float] = field(default_factory=list)  # preempted -> running again


@dataclass(slots=True)
class _Job:
    attempt_id: str
    task: _Task
    site: str
    started: float
    state: AttemptState = AttemptState.RUNNING
    reason: str | None = None
    done: Any = None  # the completion event


class World:
    """The simulated state the backends share: tasks, attempts, outages, spend."""

    def __init__(self, kernel: Kernel, sites: Sequence[SiteSpec], checkpoint: float) -> None:
        self.kernel = kernel
        self.sites = {s.name: s for s in sites}
        self.checkpoint = checkpoint
        self.tasks: dict[str, _Task] = {}  # run id -> task
        self.jobs: dict[str, _Job] = {}  # attempt id -> job
        self.down: dict[str, str] = {}  # provider -> why
        self.busy: dict[str, float] = defaultdict(float)  # site -> attempt seconds
        self.placements: list[tuple[str, str]] = []  # (data class, site) per attempt
        self.changed: Callable[[], None] = lambda: None  # set by the runner: a round is due

    def task_of(self, attempt_id: str) -> _Task:
        return self.tasks[attempt_id.rsplit("-a", 1)[0]]

    def start(self, request: LaunchRequest, site: str) -> _Job:
        now = self.kernel.now
        task = self.task_of(request.attempt_id)
        if task.first_start is None:
            task.first_start = now
        if task.stopped_at is not None:
            task.recoveries.append(now - task.stopped_at)
            task.stopped_at = None
        job = _Job(request.attempt_id, task, site, now)
        job.done = self.kernel.after(task.work - task.done, lambda: self._finish(job), priority=1)
        self.jobs[request.attempt_id] = job
        self.placements.append((task.data_class, site))
        return job

    def _finish(self, job: _Job) -> None:
        if job.state is not AttemptState.RUNNING:
            return
        self._stop(job, AttemptState.SUCCEEDED, None)
        job.task.done = job.task.work
        job.task.finished = self.kernel.now
        self.changed()

    def _stop(self, job: _Job, state: AttemptState, reason: str | None) -> None:
        now = self.kernel.now
        self.busy[job.site] += now - job.started
        job.state, job.reason = state, reason
        if job.done is not None:
            job.done.cancel()
        if state is AttemptState.SUCCEEDED:
            return
        ran = now - job.started
        kept = math.floor(ran / self.checkpoint) * self.checkpoint if self.checkpoint else 0.0
        job.task.done = min(job.task.work, job.task.done + kept)
        if state is AttemptState.PREEMPTED:
            job.task.stopped_at = now

    def cancel(self, attempt_id: str) -> None:
        job = self.jobs.get(attempt_id)
        if job is not None and job.state is AttemptState.RUNNING:
            self._stop(job, AttemptState.CANCELLED, "cancelled")

    def outage(self, provider: str, repair: float) -> None:
        """The provider's sites go down for ``repair`` seconds; their attempts are lost."""
        self.down[provider] = f"outage of {provider}"
        for job in self.jobs.values():
            if job.state is AttemptState.RUNNING and self.sites[job.site].provider == provider:
                self._stop(job, AttemptState.PREEMPTED, f"outage of {provider}")
        self.kernel.after(repair, lambda: self._repaired(provider))
        self.changed()

    def _repaired(self, provider: str) -> None:
        self.down.pop(provider, None)
        self.changed()


class SimBackend:
    """A site's backend on the virtual clock (the :class:`~archipel.backends.Backend` seam)."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self._name = name
        self._provider = world.sites[name].provider

    @property
    def name(self) -> str:
        return self._name

    def launch(self, request: LaunchRequest) -> LaunchResult:
        job = self.world.jobs.get(request.attempt_id)
        if job is not None:
            return LaunchResult(request.attempt_id, True, request.attempt_id)
        why = self.world.down.get(self._provider)
        if why is not None:
            return LaunchResult(request.attempt_id, False, error=why, retryable=True)
        self.world.start(request, self._name)
        return LaunchResult(request.attempt_id, True, request.attempt_id)

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        out = {}
        for a in attempt_ids:
            job = self.world.jobs.get(a)
            out[a] = (
                Observation(a, AttemptState.UNKNOWN)
                if job is None
                else Observation(
                    a,
                    job.state,
                    a,
                    0 if job.state is AttemptState.SUCCEEDED else None,
                    job.reason,
                )
            )
        return out

    def cancel(self, attempt_id: str) -> None:
        self.world.cancel(attempt_id)

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        return LogChunk(b"", offset)

    def health(self) -> SiteHealth:
        why = self.world.down.get(self._provider)
        return SiteHealth(why is None, why)


# -- the compliance check -----------------------------------------------------------------------


def violation(data_class: str, site: SiteSpec, snapshot: CatalogSnapshot) -> str | None:
    """Why running ``data_class`` on ``site`` breaks the default policy's rule, if it does.

    Written from the policy's text (``archipel policy show``), not from its engine:
    ``health`` needs a site in the EU/EEA and a provider with no CLOUD Act exposure.
    """
    if data_class == "public":
        return None
    if data_class == "health":
        if site.country not in EEA:
            return f"health data on {site.name}, in {site.country}: outside the EU/EEA"
        if snapshot.provider(site.provider).cloud_act is not CloudActExposure.NO:
            return f"health data on {site.name}: {site.provider} may be reached by the CLOUD Act"
        return None
    raise ValueError(f"the compliance check does not judge {data_class!r}")


# -- one strategy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one strategy gave on the scenario."""

    strategy: str
    sites: tuple[str, ...]
    jobs: int
    done: int
    refused: int  # failed before any start: no site may run them (their data class, say)
    failed: int  # failed after a start: preempted, then no site left to recover on
    unfinished: int  # still waiting or running when the figures were taken
    reasons: Mapping[str, int]  # the failed runs' messages, counted
    currency: str  # the catalog's comparison currency, which every site's price is taken into
    cost: Decimal
    gpu_hours: Decimal  # paid for: every attempt's time
    done_gpu_hours: Decimal  # the work of the jobs done
    lost_gpu_hours: Decimal  # paid for nothing: work since a checkpoint, or of failed jobs
    wait_p50_s: float
    wait_p95_s: float
    recovery_mean_s: float | None
    recoveries: int
    outages: int
    dark_hours: float  # hours with none of the strategy's providers up
    spend_share: Mapping[str, Decimal]  # provider -> share of cost
    net_cost: Decimal  # cost less the commitments' discounts
    shortfall: Decimal  # committed and not spent: owed all the same
    total_cost: Decimal  # net_cost + shortfall: what the strategy pays
    violations: tuple[str, ...]
    events: int
    rounds: int


def draw_outages(
    spec: ScenarioSpec, providers: Sequence[str], horizon: float
) -> list[tuple[float, str, float]]:
    """(start, provider, repair seconds) of every outage within ``horizon``, from the seed.

    Drawn per provider from its own stream, so a strategy without a provider's sites sees
    the same outages of the others.
    """
    out = []
    for provider in sorted(providers):
        model = spec.outages.get(provider)
        if model is None:
            continue
        out += [(w.at_hours * HOUR, provider, w.for_hours * HOUR) for w in model.windows]
        if model.mtbf_hours is None or model.mttr_hours is None:
            continue
        rng = random.Random(f"{spec.seed}:outages:{provider}")
        t = 0.0
        while True:
            t += rng.expovariate(1 / (model.mtbf_hours * HOUR))
            if t >= horizon:
                break
            repair = rng.expovariate(1 / (model.mttr_hours * HOUR))
            out.append((t, provider, repair))
            t += repair
    return sorted(w for w in out if w[0] < horizon)


def _classes(spec: ScenarioSpec, jobs: Sequence[TraceJob]) -> list[str]:
    rng = random.Random(f"{spec.seed}:classes")
    names = sorted(spec.data_classes)
    weights = [spec.data_classes[n] for n in names]
    return [rng.choices(names, weights)[0] for _ in jobs]


def _workload(job: TraceJob, data_class: str, accelerators: str, restarts: int) -> Any:
    return parse_workload(
        {
            "name": job.name,
            "kind": "batch",
            "resources": {"accelerators": accelerators},
            "data": {"class": data_class},
            "run": {"command": ["sim-work", f"{job.work:.0f}"], "max_restarts": restarts},
        }
    )


def run_strategy(
    scenario: Scenario,
    strategy: str,
    snapshot: CatalogSnapshot,
    policy: Policy,
    folder: Path,
) -> Outcome:
    """Replay the scenario's jobs through the real control plane on the strategy's sites."""
    spec = scenario.spec
    chosen = spec.strategies[strategy].sites
    sites = [
        s for s in scenario.sites if not chosen or any(fnmatch.fnmatch(s.name, p) for p in chosen)
    ]
    kernel = Kernel(START)
    world = World(kernel, sites, spec.checkpoint_minutes * 60)
    commitments = Commitments(spec.commitments, snapshot)
    scores = score_plugins(
        spec.strategies[strategy].scores,
        lambda: commitments.remaining(_list_cost(world, sites, snapshot, running=True)),
    )
    ids = iter(range(1, 10**9))
    store = Store(
        f"sqlite:///{folder / 'state.db'}", clock=kernel.clock, new_id=lambda: f"r-{next(ids):08d}"
    )
    # a simulation's store is thrown away with its folder: no commit waits for the disk
    event.listen(store.engine, "connect", _no_sync)
    store.migrate()
    try:
        backends = {s.name: Site(s, SimBackend(world, s.name)) for s in sites}
        reconciler = Reconciler(
            store,
            backends,
            SitePlacer(sites, snapshot, policy, scores),
            folder / "checkpoints",
            pick_port=lambda: 0,
            clock=kernel.clock,
        )
        rounds = _Rounds(kernel, reconciler, spec.round_seconds)
        world.changed = rounds.due
        accelerators = sites[0].accelerators  # one accelerator model: the scenario's check
        classes = _classes(spec, scenario.jobs.jobs)
        for job, data_class in zip(scenario.jobs.jobs, classes, strict=True):
            kernel.at(job.arrival, _submitter(store, world, kernel, rounds, job, data_class,
                                              accelerators, spec.max_restarts))  # fmt: skip
        last = scenario.jobs.jobs[-1].arrival if scenario.jobs.jobs else 0.0
        horizon = last + spec.drain_hours * HOUR
        used = sorted({s.provider for s in sites})
        outages = draw_outages(spec, used, horizon)
        for start, provider, repair in outages:
            kernel.at(start, lambda p=provider, r=repair: world.outage(p, r))  # type: ignore[misc]
        kernel.run(until=horizon)
        for attempt in world.jobs.values():  # what still runs is counted up to the horizon
            if attempt.state is AttemptState.RUNNING:
                world.busy[attempt.site] += kernel.now - attempt.started
                attempt.task.running = kernel.now - attempt.started
        states = {r.id: (r.state, r.message or "") for r in store.runs(limit=10**9)}
    finally:
        store.close()
    dark = (1 - up_share(outages, used, horizon, 1)) * horizon
    return _outcome(strategy, scenario, sites, world, states, snapshot, len(outages), dark,
                    rounds, kernel.events, commitments)  # fmt: skip


def _no_sync(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=OFF")


def _submitter(
    store: Store,
    world: World,
    kernel: Kernel,
    rounds: _Rounds,
    job: TraceJob,
    data_class: str,
    accelerators: str,
    restarts: int,
) -> Callable[[], None]:
    def submit() -> None:
        run = store.submit("org", _workload(job, data_class, accelerators, restarts))
        world.tasks[run.id] = _Task(job.name, data_class, job.work, submitted=kernel.now)
        rounds.due()

    return submit


class _Rounds:
    """Reconciler rounds at the first multiple of ``every`` after a change, until one
    round changes nothing (a burst larger than a round's bound takes several)."""

    def __init__(self, kernel: Kernel, reconciler: Reconciler, every: float) -> None:
        self.kernel = kernel
        self.reconciler = reconciler
        self.every = every
        self.next: float | None = None
        self.count = 0

    def due(self) -> None:
        at = math.ceil(self.kernel.now / self.every) * self.every
        if self.next is None or at < self.next:
            self.next = at
            self.kernel.at(at, self._round, priority=9)  # after the instant's other events

    def _round(self) -> None:
        if self.next != self.kernel.now:
            return  # superseded by an earlier round
        self.next = None
        for _ in range(100):  # a bound, never reached in practice: each run moves finitely
            self.count += 1
            report = self.reconciler.step()
            if not (report.transitions or report.launched):
                return


def up_share(
    outages: Sequence[tuple[float, str, float]], providers: Sequence[str], horizon: float, k: int
) -> float:
    """The share of ``[0, horizon)`` with at least ``k`` of ``providers`` up, from the
    outage windows (start, provider, repair seconds) the simulation injects."""
    edges: list[tuple[float, int]] = []
    for start, provider, repair in outages:
        if provider in providers and start < horizon:
            edges += [(start, -1), (min(start + repair, horizon), +1)]
    up, last, covered = len(set(providers)), 0.0, 0.0
    for t, change in sorted(edges):
        if up >= k:
            covered += t - last
        up, last = up + change, t
    if up >= k:
        covered += horizon - last
    return covered / horizon if horizon > 0 else 1.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _outcome(
    strategy: str,
    scenario: Scenario,
    sites: Sequence[SiteSpec],
    world: World,
    states: Mapping[str, tuple[RunState, str]],
    snapshot: CatalogSnapshot,
    outages: int,
    dark: float,
    rounds: _Rounds,
    events: int,
    commitments: Commitments,
) -> Outcome:
    by_site = {s.name: s for s in sites}
    currency = snapshot.comparison_currency
    cost_by_provider = _list_cost(world, sites, snapshot)
    seconds = sum((Decimal(repr(b)) for b in world.busy.values()), Decimal(0))
    cost = sum(cost_by_provider.values(), Decimal(0))
    bill = commitments.bill(cost_by_provider)
    tasks = list(world.tasks.values())
    waits = [t.first_start - t.submitted for t in tasks if t.first_start is not None]
    recoveries = [r for t in tasks for r in t.recoveries]
    found = []
    for data_class, site in world.placements:
        why = violation(data_class, by_site[site], snapshot)
        if why is not None:
            found.append(why)
    # paid time is useful (the work of jobs done), held (the work of jobs not over yet, up to
    # their checkpoint or still running) or lost (since a checkpoint, or of a job that failed)
    useful = held = 0.0
    for run_id, (state, _) in states.items():
        task = world.tasks[run_id]
        if state is RunState.SUCCEEDED:
            useful += task.work
        elif state is not RunState.FAILED:
            held += min(task.work, task.done + task.running)
    counts: dict[RunState, int] = defaultdict(int)
    reasons: dict[str, int] = defaultdict(int)
    refused = 0
    for run_id, (state, message) in states.items():
        counts[state] += 1
        if state is RunState.FAILED:
            reasons[message] += 1
            refused += world.tasks[run_id].first_start is None
    cent = Decimal("0.01")
    return Outcome(
        strategy=strategy,
        sites=tuple(s.name for s in sites),
        jobs=len(tasks),
        done=counts[RunState.SUCCEEDED],
        refused=refused,
        failed=counts[RunState.FAILED] - refused,
        unfinished=len(tasks) - counts[RunState.SUCCEEDED] - counts[RunState.FAILED],
        reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        currency=currency,
        cost=cost.quantize(cent),
        gpu_hours=(seconds / 3600).quantize(cent),
        done_gpu_hours=(Decimal(repr(useful)) / 3600).quantize(cent),
        lost_gpu_hours=((seconds - Decimal(repr(useful + held))) / 3600).quantize(cent),
        wait_p50_s=_percentile(waits, 0.5),
        wait_p95_s=_percentile(waits, 0.95),
        recovery_mean_s=statistics.fmean(recoveries) if recoveries else None,
        recoveries=len(recoveries),
        outages=outages,
        dark_hours=round(dark / HOUR, 3),
        spend_share={
            p: (v / cost).quantize(Decimal("0.0001")) if cost else Decimal(0)
            for p, v in sorted(cost_by_provider.items())
        },
        net_cost=bill.net.quantize(cent),
        shortfall=bill.shortfall.quantize(cent),
        total_cost=bill.total.quantize(cent),
        violations=tuple(found),
        events=events,
        rounds=rounds.count,
    )


def _list_cost(
    world: World, sites: Sequence[SiteSpec], snapshot: CatalogSnapshot, running: bool = False
) -> dict[str, Decimal]:
    """Per provider: attempt time at each site's list price, in the comparison currency
    (``running``: the attempts still running count up to now)."""
    by_site = {s.name: s for s in sites}
    currency, rates = snapshot.comparison_currency, snapshot.fx_rates
    busy = dict(world.busy)
    if running:
        for job in world.jobs.values():
            if job.state is AttemptState.RUNNING:
                busy[job.site] = busy.get(job.site, 0.0) + world.kernel.now - job.started
    out: dict[str, Decimal] = defaultdict(Decimal)
    for name, seconds in sorted(busy.items()):
        s = by_site[name]
        if s.currency not in rates:
            raise InputError(
                f"site {s.name}: no exchange rate for {s.currency} in the catalog "
                f"(it knows {', '.join(sorted(rates))})"
            )
        rate = cross_rate(rates[s.currency], rates[currency])
        out[s.provider] += Decimal(repr(seconds)) * s.price_per_hour * rate / 3600
    return out


def run_scenario(scenario: Scenario, snapshot: CatalogSnapshot, policy: Policy) -> list[Outcome]:
    """Every strategy of the scenario, each on a fresh store, in the file's order."""
    out = []
    for name in scenario.spec.strategies:
        with tempfile.TemporaryDirectory(prefix="archipel-sim-") as folder:
            out.append(run_strategy(scenario, name, snapshot, policy, Path(folder)))
    return out
