"""Shared rate limits without a Redis round trip per request: leased request units.

:class:`~archipel.gateway._limits_redis.RedisLimiter` asks Redis on every admit.
:class:`LeasingLimiter` (``rate_limits: {backend: redis, lease: L}``) instead takes
up to ``L`` request units of a tenant's bucket at once and admits from that local
lease; when half of it is spent it takes the next in the background, so a busy
tenant's requests meet Redis about once per ``L / 2`` admits and wait for it only
when the lease ran dry. Token charges are summed in process and sent every
``sync_interval`` seconds in the same call that takes units. Each reply tells the
token bucket's level, so a process refuses a tenant in token debt without asking.

The Lua script refills, charges, gives back, checks and takes in one atomic call,
on the same hash and with the same arithmetic as the per-request script.

What leasing costs, and its bounds (checked by ``tests/gateway/test_limits_lease.py``):

- **Requests, at one instant, exactly the limit**: a unit is admitted only after it
  was taken from the shared bucket, so a burst gets the limit and not one more.
- **Over time, up to** ``N x L`` **more**: leased units leave the bucket early, and
  while a process holds them the bucket refills as if they had been spent. The
  requests bucket then behaves as one whose capacity is ``N x L`` units larger
  (N processes, ``L`` units each): over any window a tenant gets at most its
  limit plus ``N x L``. Units not used within ``lease_seconds`` go back to the
  bucket with the next call (capped at capacity).
- **Under-admission**: units held by one process are not available to another,
  so a tenant may be refused while up to ``L`` units per process sit leased;
  they go back within two ``lease_seconds`` (a sweep every ``lease_seconds``
  returns them even if the tenant sends nothing more).
- **Token debt is seen late by at most one sync**: a process knows the token level
  as of its last call plus its own charges since. While another process's charges
  are on their way, it may admit up to ``L`` more requests of a tenant already in
  debt: with N processes, at most ``N x L`` requests past the debt per
  ``sync_interval``. (Even in process, tokens are charged after the answer, so one
  request may always overdraw.)

When Redis fails, decisions fall back to in-process buckets exactly as for
:class:`RedisLimiter` (the same fallback, counters and warnings).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redis.commands.core import AsyncScript

from archipel.gateway._config import Limits
from archipel.gateway._limits_redis import _FAILURES, IDLE_MARGIN, RedisLimiter, log
from archipel.gateway._limits_redis import SCRIPT_BUCKETS as _BUCKETS

# KEYS[1]: the tenant's hash. ARGV: now, requests per minute, tokens per minute
# (0: no such bucket), tokens to charge, request units given back, request units
# wanted, idle margin. Returns "granted wait token_level token_time" (token_level
# "-" without a token bucket).
_SYNC = (
    "local key = KEYS[1]\nlocal now = tonumber(ARGV[1])\n"
    + _BUCKETS
    + """
local requests = bucket(tonumber(ARGV[2]), state[1], state[2])
local tokens = bucket(tonumber(ARGV[3]), state[3], state[4])
if tokens then
  tokens.level = tokens.level - tonumber(ARGV[4])
end
local want = tonumber(ARGV[6])
local granted = 0
local wait = 0
if requests then
  requests.level = math.min(requests.capacity, requests.level + tonumber(ARGV[5]))
end
if want > 0 then
  if tokens and tokens.level <= 0 then
    wait = (1.0 - tokens.level) / tokens.rate
  elseif requests then
    granted = math.min(want, math.floor(requests.level))
    if granted < 1 then
      granted = 0
      wait = (1.0 - requests.level) / requests.rate
    else
      requests.level = requests.level - granted
    end
  else
    granted = want
  end
end
if requests then save(requests, 'rl', 'rt') end
if tokens then save(tokens, 'tl', 'tt') end
expire(requests, tokens, tonumber(ARGV[7]))
local level = '-'
local last = '-'
if tokens then
  level = fmt(tokens.level)
  last = fmt(tokens.last)
end
return string.format('%d', granted) .. ' ' .. fmt(wait) .. ' ' .. level .. ' ' .. last
"""
)


@dataclass(slots=True)
class _Lease:
    """One tenant's leased request units and what this process knows of its tokens."""

    units: int = 0
    expires: float = 0.0  # caller's time after which unused units go back
    give_back: int = 0  # expired units, returned with the next call
    pending: int = 0  # tokens charged here, not yet sent
    token_level: float | None = None  # as of the last reply
    token_time: float = 0.0
    taking: asyncio.Task[float | None] | None = None  # the call taking units, in flight

    def expire(self, now: float) -> None:
        """Units unused past their time go back to the bucket with the next call."""
        if now >= self.expires and self.units:
            self.give_back += self.units
            self.units = 0

    def token_wait(self, limits: Limits, now: float) -> float:
        """Seconds until the token bucket is positive, as far as this process knows."""
        tpm = limits.tokens_per_minute
        if tpm is None or self.token_level is None:
            return 0.0
        rate = tpm / 60.0
        level = min(float(tpm), self.token_level + max(now - self.token_time, 0.0) * rate)
        level -= self.pending
        return 0.0 if level > 0 else (1.0 - level) / rate


class LeasingLimiter(RedisLimiter):
    """A :class:`RedisLimiter` that leases request units (see the module docstring)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        limits: Mapping[str, Limits],
        *,
        lease: int,
        lease_seconds: float = 1.0,
        sync_interval: float = 0.05,
        timeout: float = 0.25,
        fallback_clock: Callable[[], float] = time.monotonic,
        retry_interval: float = 1.0,
        fallback_share: int = 1,
        sweep: bool = True,
    ) -> None:
        super().__init__(
            url, prefix, limits, timeout=timeout, fallback_clock=fallback_clock,
            retry_interval=retry_interval, fallback_share=fallback_share,
        )  # fmt: skip
        if lease < 1:
            raise ValueError(f"lease must be at least 1 unit, not {lease}")
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.sync_interval = sync_interval
        self.round_trips = 0  # calls to Redis, for the benchmark and the tests
        self._leases: dict[str, _Lease] = {}
        self._sync_script: AsyncScript | None = None
        self._syncing: asyncio.Task[None] | None = None
        self._last_now = 0.0  # the caller's latest time, for charges sent later
        self._last_seen = 0.0  # this loop's time when it was given
        self._sweeping: asyncio.Task[None] | None = None
        self._sweep = sweep  # off: expired units go back with the tenant's next call only
        self._takes: set[asyncio.Task[float | None]] = set()  # calls taking units

    async def start(self) -> None:
        await super().start()
        client = self.redis.client
        if client is not None:
            self._sync_script = client.register_script(_SYNC)
            try:  # loaded now, so that the first request does not pay for it
                await client.script_load(_SYNC)
            except _FAILURES as exc:
                self._failed(exc)
        if self._sweep:
            self._sweeping = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        """Every ``lease_seconds``: units a tenant left unused past their time go back to
        the shared bucket, even if the tenant sends nothing more (else they would wait
        for its next request, and other processes be refused meanwhile)."""
        while True:
            await asyncio.sleep(self.lease_seconds)
            try:  # Redis failing is counted by _failed in the calls; anything else is a bug
                await self.sweep(self._now_estimate())
            except Exception:  # the sweeps must go on: say it, and sweep again next time
                log.exception("gateway: a sweep of leased rate-limit units failed")

    def _now_estimate(self) -> float:
        """The callers' time now: their latest, plus what elapsed since on this loop."""
        return self._last_now + max(asyncio.get_running_loop().time() - self._last_seen, 0.0)

    async def sweep(self, now: float) -> None:
        """Give back every lease's units unused past their time, and send what is pending."""
        for lease in self._leases.values():
            lease.expire(now)
        due = [t for t, lease in self._leases.items() if lease.give_back or lease.pending]
        if due and self._reachable():
            await asyncio.gather(*(self._sync_quietly(t, now) for t in due))

    async def flush(self) -> None:
        """Send every pending charge now, and wait for them (and for calls taking units)."""
        await super().flush()
        if self._takes:
            await asyncio.wait(list(self._takes))
        await self._send_pending()

    def set_limits(self, limits: Mapping[str, Limits], now: float = 0.0) -> None:
        """Take a reloaded configuration: a tenant whose limits changed gives its leased
        units back with its next call, and leases anew under the new limits."""
        for tenant in [t for t in self._leases if t not in limits]:
            del self._leases[tenant]  # its units refill in Redis; nothing more is sent for it
        for tenant, lease in self._leases.items():
            if limits.get(tenant) != self._limits.get(tenant):
                lease.give_back += lease.units
                lease.units = 0
        super().set_limits(limits, now)

    def _lease(self, tenant: str) -> _Lease:
        lease = self._leases.get(tenant)
        if lease is None:
            lease = self._leases[tenant] = _Lease()
        return lease

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
        if self._syncing is not None:
            self._syncing.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), self.timeout)
        await super().close()

    async def admit(self, tenant: str, now: float) -> float:
        limits = self._limits[tenant]
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return 0.0
        self._seen(now)
        lease = self._lease(tenant)
        lease.expire(now)
        wait = lease.token_wait(limits, now)
        if wait > 0:
            return wait
        while lease.units == 0:
            if not self._reachable():
                self.fallbacks += 1
                return await self._local.admit(tenant, self._clock())
            taken = await asyncio.shield(self._taking(tenant, self._size(limits), now))
            if taken is None:  # Redis failed: this request is decided in process
                self.fallbacks += 1
                return await self._local.admit(tenant, self._clock())
            if tenant not in self._limits:  # a reload removed the tenant while it waited:
                return 0.0  # admitted before the reload, as a charge for it is ignored
            lease.expire(now)  # a call that started earlier may bring units already stale
            if lease.units == 0 and taken > 0:  # refused: nothing left to lease
                return taken
            # else units came (this request takes one), or others took them all: again
        lease.units -= 1
        if lease.units * 2 <= self._size(limits) and not self.degraded:
            self._taking(tenant, self._size(limits) - lease.units, now)  # the next, ahead
        return 0.0

    def charge_tokens(self, tenant: str, tokens: int, now: float) -> None:
        limits = self._limits.get(tenant)
        if limits is None or limits.tokens_per_minute is None:
            return
        self._seen(now)
        self._lease(tenant).pending += tokens
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.get_running_loop().create_task(self._sync_later())

    def _seen(self, now: float) -> None:
        self._last_now = now
        with contextlib.suppress(RuntimeError):  # no running loop: a synchronous caller
            self._last_seen = asyncio.get_running_loop().time()

    def _size(self, limits: Limits) -> int:
        rpm = limits.requests_per_minute
        return self.lease if rpm is None else max(1, min(self.lease, rpm))

    def _taking(self, tenant: str, want: int, now: float) -> asyncio.Task[float | None]:
        """The tenant's one call in flight that takes units, started if there is none:
        concurrent requests of a tenant whose lease ran dry wait for the same call."""
        lease = self._leases[tenant]
        if lease.taking is None or lease.taking.done():
            lease.taking = asyncio.get_running_loop().create_task(self._take(tenant, want, now))
            self._takes.add(lease.taking)
            lease.taking.add_done_callback(self._takes.discard)
        return lease.taking

    async def _take(self, tenant: str, want: int, now: float) -> float | None:
        """Take up to ``want`` units: the wait when none came, ``None`` when Redis failed."""
        try:
            return await self._sync(tenant, want, now)
        except _FAILURES as exc:
            self._failed(exc)
            return None

    async def _sync_later(self) -> None:
        await asyncio.sleep(self.sync_interval)
        await self._send_pending()

    async def _send_pending(self) -> None:
        """Send every tenant's pending charges, all at once; while Redis fails, charge
        them in process."""
        due = [t for t, lease in self._leases.items() if lease.pending]
        if self._reachable():
            await asyncio.gather(*(self._sync_quietly(t, self._last_now) for t in due))
        for tenant in due:
            lease = self._leases.get(tenant)
            if lease is not None and lease.pending:  # not sent: Redis failed
                self.fallbacks += 1
                self._local.charge_tokens(tenant, lease.pending, self._clock())
                lease.pending = 0

    async def _sync_quietly(self, tenant: str, now: float) -> None:
        """One call sending a tenant's pending charges and expired units; a failure is
        counted (the limiter degrades) and what was not sent stays pending."""
        try:
            await self._sync(tenant, 0, now)
        except _FAILURES as exc:
            self._failed(exc)

    async def _sync(self, tenant: str, want: int, now: float) -> float:
        """One call: send pending tokens and expired units, take ``want`` units."""
        if self._sync_script is None:
            raise RuntimeError("LeasingLimiter.start() has not been awaited")
        limits, lease = self._limits.get(tenant), self._leases.get(tenant)
        if limits is None or lease is None:  # a reload removed the tenant
            return 0.0
        charge, back = lease.pending, lease.give_back
        lease.pending, lease.give_back = 0, 0
        rpm, tpm = limits.requests_per_minute or 0, limits.tokens_per_minute or 0
        try:
            reply = await self._sync_script(
                keys=[f"{self.redis.prefix}:{tenant}"],
                args=(repr(now), rpm, tpm, charge, back, want, IDLE_MARGIN),
            )
        except BaseException:
            lease.pending += charge  # not sent: kept for the next call or the fallback
            lease.give_back += back
            raise
        self.round_trips += 1
        self._recovered()
        granted, wait, level, last = (reply.decode() if isinstance(reply, bytes) else reply).split()
        if level != "-":
            lease.token_level, lease.token_time = float(level), float(last)
        if int(granted):
            lease.units += int(granted)
            lease.expires = now + self.lease_seconds
        return float(wait) if not int(granted) else 0.0
