"""I/O-free decisions of the request path: which replica, whether to retry.

Everything here takes the time as an argument and touches no socket, so it
can be unit-tested, property-tested and simulated. The proxy calls
:func:`pick` for every attempt; ``pick`` only ever chooses from the
:class:`~archipel.gateway._route_table.ModelRoute` it is given, which is the
tenant's data class table, so failover cannot leave the class.

Balancing: among admitted replicas (circuit not open, below
``max_concurrency``, not yet tried by this request) the lowest score wins::

    score = (outstanding + 1) * max(ewma_latency, 1 ms) * cost_factor / weight

and the ordering key is ``(provider already tried, pool, score)``: on a
retry a replica of another provider beats any replica of a provider that
already failed, and primary replicas beat secondary ones (spillover).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from archipel.gateway._config import Pool
from archipel.gateway._route_table import ModelRoute, Replica


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(StrEnum):
    TRIPPED = "tripped"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"


#: every allowed transition of a replica's circuit; anything else is a bug
TRANSITIONS: Mapping[tuple[BreakerState, BreakerEvent], BreakerState] = {
    # `failure_threshold` consecutive failed attempts: stop sending traffic
    (BreakerState.CLOSED, BreakerEvent.TRIPPED): BreakerState.OPEN,
    # `cooldown` seconds since it opened: let exactly one request probe it
    (BreakerState.OPEN, BreakerEvent.COOLDOWN_ELAPSED): BreakerState.HALF_OPEN,
    # the probe succeeded: back in rotation
    (BreakerState.HALF_OPEN, BreakerEvent.PROBE_SUCCEEDED): BreakerState.CLOSED,
    # the probe failed: wait another cooldown
    (BreakerState.HALF_OPEN, BreakerEvent.PROBE_FAILED): BreakerState.OPEN,
}

_HISTORY = 64  # transitions kept per replica: bounded so a flapping replica cannot grow memory


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    event: BreakerEvent
    before: BreakerState
    after: BreakerState


class Breaker:
    """A circuit breaker driven by :data:`TRANSITIONS`, with a bounded history."""

    __slots__ = ("cooldown", "failures", "history", "opened_at", "probing", "state", "threshold")

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive, while closed
        self.opened_at = 0.0
        self.probing = False  # a half-open probe is in flight
        self.history: deque[Transition] = deque(maxlen=_HISTORY)

    def _move(self, event: BreakerEvent, now: float) -> None:
        after = TRANSITIONS.get((self.state, event))
        if after is None:
            raise RuntimeError(f"breaker: no transition from {self.state} on {event}")
        self.history.append(Transition(now, event, self.state, after))
        self.state = after
        if after is BreakerState.OPEN:
            self.opened_at = now
        self.probing = False

    def admits(self, now: float) -> bool:
        """Whether a request may be sent now (moves open -> half-open on cooldown)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.cooldown:
                return False
            self._move(BreakerEvent.COOLDOWN_ELAPSED, now)
        return not self.probing

    def on_attempt(self) -> None:
        """A request was sent; in half-open state it is the one probe."""
        if self.state is BreakerState.HALF_OPEN:
            self.probing = True

    def on_abandon(self) -> None:
        """The attempt ended without a verdict (cancelled): free the probe slot."""
        self.probing = False

    def on_success(self, now: float) -> None:
        self.failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerEvent.PROBE_SUCCEEDED, now)

    def on_failure(self, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerEvent.PROBE_FAILED, now)
        elif self.state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures >= self.threshold:
                self.failures = 0
                self._move(BreakerEvent.TRIPPED, now)


class ReplicaState:
    """Mutable health of one replica: in-flight requests, latency average, circuit, checks."""

    __slots__ = ("breaker", "check_streak", "down", "ewma", "outstanding", "pending", "updated")

    def __init__(self, breaker: Breaker, pending: bool = False) -> None:
        self.breaker = breaker
        self.outstanding = 0
        self.ewma = 0.0  # seconds; 0 until the first sample, so new replicas get tried
        self.updated = 0.0
        # a replica that active checks will judge gets no traffic before its first check:
        # a server that is still loading its model must not trip its circuit meanwhile
        self.pending = pending
        self.down = pending  # failed its active health checks (or has none yet)
        self.check_streak = 0  # consecutive checks that disagree with ``down``

    def checked(self, ok: bool, unhealthy_after: int, healthy_after: int) -> bool:
        """Fold in one active check; True when the verdict (``down``) changed.

        The first check of a pending replica decides at once: up if it passes, down (and
        then ``healthy_after`` passes to come back) if it fails.
        """
        if self.pending:
            self.pending, self.check_streak = False, 0
            self.down = not ok
            return ok
        if ok != self.down:  # the check agrees with the current verdict
            self.check_streak = 0
            return False
        self.check_streak += 1
        if self.check_streak < (healthy_after if self.down else unhealthy_after):
            return False
        self.down = not self.down
        self.check_streak = 0
        return True

    def observe(self, latency: float, now: float, decay: float) -> None:
        """Fold one latency sample into a time-decayed average (time constant ``decay``)."""
        if self.ewma == 0.0:
            self.ewma = latency
        else:
            w = math.exp(-max(now - self.updated, 0.0) / decay)
            self.ewma = self.ewma * w + latency * (1.0 - w)
        self.updated = now


def new_states(
    replicas: Sequence[Replica], threshold: int, cooldown: float, pending: bool = False
) -> list[ReplicaState]:
    """One fresh state per replica, indexed like ``replicas`` (``pending``: see
    :class:`ReplicaState`)."""
    return [ReplicaState(Breaker(threshold, cooldown), pending) for _ in replicas]


class Refusal(StrEnum):
    """Why no replica was picked."""

    FULL = "full"  # every admitted replica is at max_concurrency: shed with 429
    UNAVAILABLE = "unavailable"  # every replica is open or already tried: 503


def pick(
    route: ModelRoute,
    states: Sequence[ReplicaState],
    now: float,
    tried: Sequence[Replica] = (),
) -> Replica | Refusal:
    """The replica for the next attempt of a request, or why there is none.

    Replicas that fail their active health checks are skipped, unless every
    replica that could take the attempt is failing them: then the checks are
    ignored and the circuits alone decide, so a wrong check (a replica with no
    ``health_path``) cannot take a whole model down.
    """
    tried_ids = {r.index for r in tried}
    tried_providers = {r.provider for r in tried}
    best, full, skipped = _best(route, states, now, tried_ids, tried_providers, True)
    if best is None and skipped:
        best, full, _ = _best(route, states, now, tried_ids, tried_providers, False)
    if best is not None:
        return best
    return Refusal.FULL if full else Refusal.UNAVAILABLE


def _best(
    route: ModelRoute,
    states: Sequence[ReplicaState],
    now: float,
    tried_ids: set[int],
    tried_providers: set[str],
    use_checks: bool,
) -> tuple[Replica | None, bool, bool]:
    """(best replica, some were full, some were skipped for failing checks)."""
    best: Replica | None = None
    best_key: tuple[bool, bool, float] = (True, True, math.inf)
    full = skipped = False
    for r in route.primary + route.secondary:
        if r.index in tried_ids:
            continue
        st = states[r.index]
        if use_checks and st.down:
            skipped = True
            continue
        if st.outstanding >= r.max_concurrency:
            full = True
            continue
        if not st.breaker.admits(now):
            continue
        score = (st.outstanding + 1) * max(st.ewma, 1e-3) * r.cost_factor / r.weight
        key = (r.provider in tried_providers, r.pool is Pool.SECONDARY, score)
        if key < best_key:
            best, best_key = r, key
    return best, full, skipped


def retryable_status(status: int) -> bool:
    """Statuses worth another replica: overload (429) and server errors."""
    return status == 429 or status >= 500


class RetryBudget:
    """Caps retries to a share of traffic so failover cannot amplify an outage.

    Each request earns ``ratio`` retries; ``min_per_second`` retries accrue
    with time so a quiet gateway can still fail over. The balance is capped
    at ten seconds' worth, or 10 retries, whichever is more.
    """

    __slots__ = ("balance", "cap", "last", "min_per_second", "ratio")

    def __init__(self, ratio: float, min_per_second: float, now: float) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.cap = max(10.0, 10.0 * min_per_second)
        self.balance = self.cap
        self.last = now

    def configure(self, ratio: float, min_per_second: float) -> None:
        """New rates (a reload); the balance is kept, within the new cap."""
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.cap = max(10.0, 10.0 * min_per_second)
        self.balance = min(self.balance, self.cap)

    def on_request(self) -> None:
        self.balance = min(self.cap, self.balance + self.ratio)

    def try_spend(self, now: float) -> bool:
        """Take one retry if the budget allows it."""
        elapsed = max(now - self.last, 0.0)
        self.last = now
        self.balance = min(self.cap, self.balance + elapsed * self.min_per_second)
        if self.balance >= 1.0:
            self.balance -= 1.0
            return True
        return False
