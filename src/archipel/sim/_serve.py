"""Study 2, serving on spot (the *SkyServe* setup): replicas of an LLM service on spot
instances across zones, with on-demand replicas when spot runs out, under real request
arrivals and real spot availability.

The model, stated once (docs/simulate-serve.md has the why):

- **Time** runs on the event kernel; spot availability changes at each tick of the zone
  traces (:class:`~archipel.sim.SpotTrace`: 195 s in the shared ones). A zone with spot
  at a tick can hold up to ``per_zone`` spot replicas; without, none: those it held are
  preempted at that tick.
- **Replicas** are launched, bill from their launch, and are ready ``cold_start``
  seconds later (an LLM server loading its weights). A ready replica serves ``slots``
  requests at once (continuous batching, taken as that many servers).
- **Requests** arrive as in the LLM trace (looped, to cover the time simulated), each
  needing ``context / prefill_tps + generated / decode_tps`` seconds of one slot, and
  wait in one first-come-first-served queue (:class:`~archipel.sim._queue.ReplicaPool`).
  A preempted replica's requests start over on the next free slot; one drained (an
  on-demand replica no longer needed) finishes them first.
- **Policies**:
  ``on-demand``: ``replicas`` on-demand replicas, always;
  ``spot``: ``replicas`` spot replicas in the first zone only, relaunched when it has
  spot again;
  ``spot-hedge``: ``replicas + spare`` spot replicas spread over every zone with spot
  (the zone with the fewest first), and on-demand replicas for what spot cannot hold,
  drained once spot replicas are ready again (SkyServe's spot placement with
  on-demand fallback, simplified: no learning of which zones preempt more).

Figures per policy: cost (replica-hours at their price), cost against all on-demand,
availability (share of the time with at least ``replicas`` ready, and with at least
one), request latency percentiles, and requests that waited longer than ``slo_wait``.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from archipel.core import CatalogSnapshot, InputError
from archipel.policy import Policy
from archipel.sim._kernel import Kernel
from archipel.sim._queue import ReplicaPool, Request
from archipel.sim._serve_engine import ReplicaPlacer, ZoneSite, zone_site
from archipel.sim._trace import SpotTrace

SERVE_POLICIES = ("on-demand", "spot", "spot-hedge")
_START = datetime(2026, 1, 1)


@dataclass(frozen=True, slots=True)
class ServeSpec:
    """The service and its prices (see the module's text)."""

    replicas: int = 4
    spare: int = 1  # spot-hedge: spot replicas beyond ``replicas``
    per_zone: int = 4  # spot replicas one zone can hold when it has spot
    slots: int = 16  # requests a ready replica serves at once
    cold_start: float = 180.0  # seconds from launch to ready
    prefill_tps: float = 4000.0  # context tokens a slot reads per second
    decode_tps: float = 40.0  # tokens a slot generates per second
    slo_wait: float = 10.0  # seconds a request may wait before it counts as missed
    spot_price: Decimal = Decimal("0.9")  # per replica-hour
    on_demand_price: Decimal = Decimal("3.06")
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class LlmRequest:
    arrival: float  # seconds from the trace's first request
    context: int
    generated: int


def load_llm_trace(path: Path) -> list[LlmRequest]:
    """The Azure LLM inference trace's rows (TIMESTAMP, ContextTokens, GeneratedTokens)."""
    out: list[LlmRequest] = []
    first: datetime | None = None
    try:
        with path.open(newline="") as handle:
            for n, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    stamp = datetime.fromisoformat(row["TIMESTAMP"][:26])
                    first = first or stamp
                    out.append(
                        LlmRequest(
                            (stamp - first).total_seconds(),
                            int(row["ContextTokens"]),
                            int(row["GeneratedTokens"]),
                        )
                    )
                except (KeyError, ValueError) as exc:
                    raise InputError(
                        f"{path}: line {n}: not a request row ({exc}); the columns are "
                        "TIMESTAMP, ContextTokens, GeneratedTokens"
                    ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not out:
        raise InputError(f"{path}: no request")
    return out


@dataclass(slots=True)
class _Replica:
    kind: str  # "spot" or "on-demand"
    zone: int | None
    site: str
    launched: float
    ready: bool = False
    stopped: float | None = None


@dataclass(frozen=True, slots=True)
class ServeOutcome:
    policy: str
    cost: Decimal
    spot_hours: Decimal
    on_demand_hours: Decimal
    available: float  # share of the time with at least `replicas` ready
    up: float  # share of the time with at least one ready
    requests: int
    p50: float | None  # None when no request was served
    p90: float | None
    p99: float | None
    slo_missed: int
    preemptions: int
    events: int = 0  # the kernel's events: arrivals, completions, ticks, replicas ready
    decisions: int = 0  # replica placements asked of the engine
    engine_calls: int = 0  # of which the engine computed (the rest: its memo)
    #: after each tick: (seconds, replicas ready, spot alive, on-demand alive, cost so far)
    timeline: tuple[tuple[float, int, int, int, float], ...] = ()
    preempted_at: tuple[float, ...] = ()  # when each preemption happened (seconds)


@dataclass
class _Service:
    kernel: Kernel
    spec: ServeSpec
    zones: Sequence[SpotTrace]
    policy: str
    placer: ReplicaPlacer
    pool: ReplicaPool = field(init=False)
    replicas: list[_Replica] = field(default_factory=list)
    live: list[_Replica] = field(default_factory=list)  # those not stopped
    preemptions: int = 0
    _closed_cost: float = 0.0  # of the replicas stopped, for the timeline
    timeline: list[tuple[float, int, int, int, float]] = field(default_factory=list)
    preempted_at: list[float] = field(default_factory=list)
    _ready_since: float = 0.0
    _ready_time: float = 0.0  # time with at least `replicas` ready
    _up_time: float = 0.0  # time with at least one ready
    _last: float = 0.0

    def __post_init__(self) -> None:
        self.pool = ReplicaPool(self.kernel, 0)

    # -- the clock of availability -----------------------------------------------------

    def _account(self) -> None:
        now, ready = self.kernel.now, self._ready_count()
        span = now - self._last
        if ready >= self.spec.replicas:
            self._ready_time += span
        if ready >= 1:
            self._up_time += span
        self._last = now

    def _ready_count(self) -> int:
        return sum(1 for r in self.live if r.ready)

    def _alive(self, kind: str, zone: int | None = None) -> list[_Replica]:
        return [r for r in self.live if r.kind == kind and (zone is None or r.zone == zone)]

    # -- launching and stopping ---------------------------------------------------------

    def _launch(self, kind: str, zone: int | None, site: str) -> None:
        replica = _Replica(kind, zone, site, self.kernel.now)
        self.replicas.append(replica)
        self.live.append(replica)
        self.kernel.after(self.spec.cold_start, lambda: self._ready(replica))

    def _ready(self, replica: _Replica) -> None:
        if replica.stopped is not None:
            return
        self._account()
        replica.ready = True
        self.pool.resize(self._ready_count() * self.spec.slots)
        if replica.kind == "spot" and self.policy == "spot-hedge":
            self._hedge(self._tick_index())  # spot is back: drain on-demand if enough

    def _stop(self, replica: _Replica, preempted: bool) -> None:
        self._account()
        was_ready = replica.ready
        replica.stopped = self.kernel.now
        replica.ready = False
        self.live.remove(replica)
        self._closed_cost += self._cost(replica, self.kernel.now)
        if preempted:
            self.preemptions += 1
            self.preempted_at.append(self.kernel.now)
        if was_ready:
            self.pool.resize(self._ready_count() * self.spec.slots, preempt=preempted)

    # -- the policies, at each tick -----------------------------------------------------

    def _tick_index(self) -> int:
        gap = self.zones[0].gap_seconds
        return min(int(self.kernel.now // gap), len(self.zones[0]) - 1)

    def _has_spot(self, zone: int, tick: int) -> bool:
        trace = self.zones[zone]
        return bool(trace.available[tick % len(trace)])

    def tick(self, tick: int) -> None:
        self._account()
        for z in range(len(self.zones)):  # spot taken back where the zone has none now
            if not self._has_spot(z, tick):
                for r in self._alive("spot", z):
                    self._stop(r, preempted=True)
        n = self.spec.replicas
        if self.policy == "on-demand":
            self._on_demand(n - len(self._alive("on-demand")))
        elif self.policy == "spot":  # the first zone only: every other is down for it
            has = [z == 0 and self._has_spot(0, tick) for z in range(len(self.zones))]
            self._spot(min(n, self.spec.per_zone), has)
        else:
            self._hedge(tick)
        self._record()

    def _record(self) -> None:
        """The state after a tick's decisions, for the report's timelines."""
        now = self.kernel.now
        spot = sum(1 for r in self.live if r.kind == "spot")
        cost = self._closed_cost + sum(self._cost(r, now) for r in self.live)
        self.timeline.append((now, self._ready_count(), spot, len(self.live) - spot, cost))

    def _cost(self, replica: _Replica, until: float) -> float:
        price = self.spec.spot_price if replica.kind == "spot" else self.spec.on_demand_price
        return (until - replica.launched) * float(price) / 3600

    def _spot(self, want: int, has: Sequence[bool]) -> None:
        """Launch spot replicas until ``want`` are alive or no zone can take one."""
        held = [len(self._alive("spot", z)) for z in range(len(self.zones))]
        for _ in range(want - sum(held)):
            zone = self.placer.spot_zone(has, held, self.spec.per_zone)
            if zone is None:
                return
            self._launch("spot", zone, self.placer.zone_names[zone])
            held[zone] += 1

    def _on_demand(self, count: int) -> None:
        for _ in range(count):
            site = self.placer.on_demand_site()
            if site is None:  # the policy allows no on-demand site
                return
            self._launch("on-demand", None, site)

    def _hedge(self, tick: int) -> None:
        has = [self._has_spot(z, tick) for z in range(len(self.zones))]
        self._spot(self.spec.replicas + self.spec.spare, has)
        spot_ready = sum(1 for r in self._alive("spot") if r.ready)
        spot_alive = len(self._alive("spot"))
        on_demand = self._alive("on-demand")
        deficit = self.spec.replicas - spot_alive
        self._on_demand(deficit - len(on_demand))  # what spot cannot hold: on-demand
        if spot_ready >= self.spec.replicas:  # spot serves it all again: drain on-demand
            for r in on_demand:
                self._stop(r, preempted=False)

    def finish(self) -> None:
        self._account()
        for r in self.live:
            r.stopped = self.kernel.now
        self.live.clear()


def placer_for(
    zones: Sequence[SpotTrace],
    spec: ServeSpec,
    snapshot: CatalogSnapshot,
    policy: Policy,
    *,
    data_class: str = "internal",
    provider: str = "aws",
    sites: Sequence[ZoneSite] | None = None,
    memo: bool = True,
) -> ReplicaPlacer:
    """The engine that places the service's replicas: a spot site per zone and an
    on-demand site per region, at ``spec``'s prices, for ``data_class``. Each zone is
    where ``sites`` says, by default in ``provider`` at the region its name says and
    that region's country in the catalog (:func:`zone_site`)."""
    _check_zones(zones)
    if sites is None:
        sites = [zone_site(z, snapshot, provider) for z in zones]
    elif len(sites) != len(zones):
        raise InputError(f"{len(sites)} sites for {len(zones)} zones: give one site per zone")
    return ReplicaPlacer(
        zones, sites, spec.spot_price, spec.on_demand_price, snapshot, policy,
        data_class=data_class, currency=spec.currency, memo=memo,
    )  # fmt: skip


def simulate_serving(
    zones: Sequence[SpotTrace],
    requests: Sequence[LlmRequest],
    spec: ServeSpec,
    policy: str,
    hours: float | None = None,
    loop: bool = True,
    *,
    placer: ReplicaPlacer,
) -> ServeOutcome:
    """One policy over the traces' span (or ``hours``), the requests looped to cover it
    (``loop=False``: once), each replica placed by ``placer`` (see :func:`placer_for`)."""
    if policy not in SERVE_POLICIES:
        raise InputError(f"policy {policy!r}: choose one of {', '.join(SERVE_POLICIES)}")
    _check_zones(zones)
    if len(placer.zone_names) != len(zones):
        raise ValueError("the placer was built for other zones")
    gap = zones[0].gap_seconds
    span = min(len(t) for t in zones) * gap if hours is None else hours * 3600
    kernel = Kernel(_START)
    service = _Service(kernel, spec, zones, policy, placer)
    calls, engine_calls = placer.calls, placer.engine_calls
    ticks = math.ceil(span / gap)

    # Ticks and arrivals are scheduled one ahead, not all at once: the heap stays small.
    # A tick runs first at its instant (priority -1), an arrival after what else is due
    # then (priority 1), as if all had been scheduled at the start.
    def tick(k: int) -> None:
        service.tick(k)
        if k + 1 < ticks:
            kernel.at((k + 1) * gap, functools.partial(tick, k + 1), priority=-1)

    arrivals = _arrivals(requests, spec, span, loop)
    made: list[Request] = []

    def arrive(need: float) -> None:
        made.append(service.pool.arrive(need))
        following = next(arrivals, None)
        if following is not None:
            kernel.at(following[0], functools.partial(arrive, following[1]), priority=1)

    if ticks:
        kernel.at(0, functools.partial(tick, 0), priority=-1)
    first = next(arrivals, None)
    if first is not None:
        kernel.at(first[0], functools.partial(arrive, first[1]), priority=1)
    kernel.run(until=span)
    service.finish()
    done = sorted(r.latency for r in service.pool.finished)
    missed = sum(1 for r in made if r.started is None or r.wait > spec.slo_wait)

    def hours_of(kind: str) -> Decimal:
        seconds = sum((r.stopped or span) - r.launched for r in service.replicas if r.kind == kind)
        return Decimal(repr(seconds)) / 3600

    spot_h, od_h = hours_of("spot"), hours_of("on-demand")
    cost = spot_h * spec.spot_price + od_h * spec.on_demand_price

    def pct(q: float) -> float | None:
        return done[min(len(done) - 1, math.ceil(q * len(done)) - 1)] if done else None

    return ServeOutcome(
        policy=policy,
        cost=cost.quantize(Decimal("0.01")),
        spot_hours=spot_h.quantize(Decimal("0.01")),
        on_demand_hours=od_h.quantize(Decimal("0.01")),
        available=service._ready_time / span,
        up=service._up_time / span,
        requests=len(made),
        p50=pct(0.5),
        p90=pct(0.9),
        p99=pct(0.99),
        slo_missed=missed,
        preemptions=service.preemptions,
        events=kernel.events,
        decisions=placer.calls - calls,
        engine_calls=placer.engine_calls - engine_calls,
        timeline=tuple(service.timeline),
        preempted_at=tuple(service.preempted_at),
    )


def _check_zones(zones: Sequence[SpotTrace]) -> None:
    if not zones:
        raise InputError("give at least one zone's spot availability trace")
    gaps = {t.gap_seconds for t in zones}
    if len(gaps) != 1:
        raise InputError(f"the zone traces tick at different gaps ({sorted(gaps)} s)")


def _arrivals(
    requests: Sequence[LlmRequest], spec: ServeSpec, span: float, loop: bool
) -> Iterator[tuple[float, float]]:
    """Each request's arrival and the seconds of one slot it needs, looped over ``span``."""
    period = requests[-1].arrival + 1.0
    for lap in itertools.count():
        offset = lap * period
        if offset >= span or (lap and not loop):
            return
        for r in requests:
            at = offset + r.arrival
            if at >= span:
                return
            yield at, r.context / spec.prefill_tps + r.generated / spec.decode_tps
