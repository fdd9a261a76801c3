"""Per-tenant rate limits shared by several gateway processes, in Redis.

The same token buckets as :mod:`archipel.gateway._limits`, kept in Redis so
that every process behind a load balancer draws from one limit. Each tenant
is one hash, ``{prefix}:{tenant}``, with the fields ``rl``/``rt`` (request
bucket level and time of the last update) and ``tl``/``tt`` (token bucket);
a missing bucket is full. A Lua script refills, checks and updates both
buckets in one atomic call (EVALSHA), so concurrent admits from many
processes can never take the same unit twice. The capacities travel with
every call rather than living in Redis: after a configuration reload the next
call refills up to the new capacity, which also clamps a level above a
lowered one, and the tenant's state is otherwise kept.

Time is wall-clock seconds passed in by the caller, because the processes
may run on different hosts. A call whose time is earlier than the stored one
(clock skew between hosts) refills nothing and leaves the stored time as it
is, so a lagging host can neither take back nor hand out time twice. When the
caller's time only moves forward, the decisions are the in-process ones,
bit for bit: the script performs the same floating-point operations, stores
levels with ``%.17g`` (Lua's ``tostring`` keeps only 14 digits) and returns
waits as strings (Redis would truncate a Lua number to an integer). Every
write sets an expiry of the time the buckets need to become full again plus
two minutes, so an idle tenant's key disappears only once it would read
as full anyway, while a tenant that overdrew tokens keeps its debt.

A tenant without limits costs no round trip. A tenant that is not configured
is a caller error for :meth:`RedisLimiter.admit` (``KeyError``, as a lookup
of its in-process limiter would be), while :meth:`RedisLimiter.charge_tokens`
ignores it: the request was admitted before a reload removed the tenant.
A charge goes to Redis in the background, off the request's path;
:meth:`RedisLimiter.flush` waits for those on their way, and
:meth:`RedisLimiter.close` does so for at most ``timeout`` seconds.

Redis being down must not take the gateway down, so the limiter fails open to
per-process limits: :class:`RedisBuckets` only talks to Redis, and
:class:`RedisLimiter` wraps it with the fallback. When Redis is unreachable,
times out (``timeout`` seconds, for connecting and for each reply) or answers
with an error, the call is decided by an
:class:`~archipel.gateway._limits.InProcessLimiter`, on ``fallback_clock``:
each process then enforces the limit on its own, so with N processes a tenant
may get up to N times its limit until Redis is back. Such calls are counted in
``fallbacks``; ``degraded`` is true from a failed Redis call to the next
successful one. One warning is logged per outage, not per request. While
degraded, Redis is tried again at most once every ``retry_interval`` seconds,
so that a Redis that times out slows down one request per interval rather than
every request; the first call that succeeds ends the outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from archipel.gateway._config import Limits
from archipel.gateway._limits import InProcessLimiter

log = logging.getLogger("archipel.gateway")

#: seconds a key outlives the time its buckets need to be full again
IDLE_MARGIN = 120.0

#: Lua shared by the scripts: reads the tenant's hash (``key``) at ``now``, both
#: defined before it; ``bucket`` refills one bucket, ``save`` writes it back with
#: every digit, ``expire`` sets the key's expiry (full again, plus the margin)
SCRIPT_BUCKETS = """
local state = redis.call('HMGET', key, 'rl', 'rt', 'tl', 'tt')

local function bucket(capacity, level, last)
  if capacity <= 0 then
    return nil
  end
  local b = {capacity = capacity, rate = capacity / 60.0, level = capacity, last = now}
  if level then
    level = tonumber(level)
    last = tonumber(last)
    local elapsed = now - last
    if elapsed < 0 then
      elapsed = 0
      b.last = last
    end
    b.level = math.min(capacity, level + elapsed * b.rate)
  end
  return b
end

local function fmt(x)
  return string.format('%.17g', x)
end

local function save(b, level_field, last_field)
  redis.call('HSET', key, level_field, fmt(b.level), last_field, fmt(b.last))
end

local function expire(requests, tokens, margin)
  local full = 0
  for _, b in ipairs({requests or false, tokens or false}) do
    if b then
      full = math.max(full, (b.capacity - b.level) / b.rate)
    end
  end
  redis.call('PEXPIRE', key, string.format('%d', math.ceil((full + margin) * 1000)))
end
"""

# KEYS[1]: the tenant's hash. ARGV: operation ("admit" or "charge"), now,
# requests per minute, tokens per minute (0: no such bucket), tokens to
# charge, idle margin in seconds. Returns the wait in seconds, as a string.
_SCRIPT = (
    "local key = KEYS[1]\nlocal now = tonumber(ARGV[2])\n"
    + SCRIPT_BUCKETS
    + """
local requests = bucket(tonumber(ARGV[3]), state[1], state[2])
local tokens = bucket(tonumber(ARGV[4]), state[3], state[4])
local wait = 0
if ARGV[1] == 'charge' then
  if tokens then
    tokens.level = tokens.level - tonumber(ARGV[5])
    save(tokens, 'tl', 'tt')
  end
else
  local refused = false
  if tokens then
    save(tokens, 'tl', 'tt')
    if tokens.level <= 0 then
      wait = (1.0 - tokens.level) / tokens.rate
      refused = true
    end
  end
  if requests and not refused then
    if requests.level >= 1.0 then
      requests.level = requests.level - 1.0
    else
      wait = (1.0 - requests.level) / requests.rate
    end
    save(requests, 'rl', 'rt')
  end
end
expire(requests, tokens, tonumber(ARGV[6]))
return fmt(wait)
"""
)

_FAILURES = (RedisError, OSError, TimeoutError)


class RedisBuckets:
    """The buckets in Redis alone: every call raises :class:`RedisError`, ``OSError``
    or ``TimeoutError`` when Redis fails (:class:`RedisLimiter` decides what then)."""

    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None

    async def start(self) -> None:
        """Connect and load the script."""
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # one immediate retry replaces a pooled connection that Redis closed (a
            # restart); a timeout is not retried, so a call waits at most ``timeout``
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._script = self._client.register_script(_SCRIPT)
        await self._client.script_load(_SCRIPT)

    @property
    def started(self) -> bool:
        return self._script is not None

    @property
    def client(self) -> aioredis.Redis | None:
        """The connection, once started (for scripts of other limiters on the same hash)."""
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._script = None

    async def admit(self, tenant: str, limits: Limits, now: float) -> float:
        rpm, tpm = limits.requests_per_minute or 0, limits.tokens_per_minute or 0
        return await self._call(tenant, ("admit", repr(now), rpm, tpm, 0))

    async def charge(self, tenant: str, limits: Limits, tokens: int, now: float) -> None:
        rpm, tpm = limits.requests_per_minute or 0, limits.tokens_per_minute or 0
        await self._call(tenant, ("charge", repr(now), rpm, tpm, tokens))

    async def _call(self, tenant: str, args: tuple[str | int, ...]) -> float:
        if self._script is None:
            raise RuntimeError("RedisLimiter.start() has not been awaited")
        reply = await self._script(keys=[f"{self.prefix}:{tenant}"], args=(*args, IDLE_MARGIN))
        return float(reply)


class RedisLimiter:
    """The :class:`~archipel.gateway._limits.Limiter` whose buckets are shared through
    Redis (:class:`RedisBuckets`), failing open to an
    :class:`~archipel.gateway._limits.InProcessLimiter` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        limits: Mapping[str, Limits],
        *,
        timeout: float = 0.25,
        fallback_clock: Callable[[], float] = time.monotonic,
        retry_interval: float = 1.0,
        fallback_share: int = 1,
    ) -> None:
        self.redis = RedisBuckets(url, prefix, timeout)
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.fallbacks = 0  # calls decided in process because Redis failed
        self.degraded = False  # the last Redis call failed
        self._clock = fallback_clock
        self._limits: dict[str, Limits] = dict(limits)
        # decides while Redis fails; split like in-process limits among this host's workers
        self._local = InProcessLimiter(limits, fallback_clock(), fallback_share)
        self._charges: set[asyncio.Task[None]] = set()  # charges on their way to Redis
        self._retry_at = 0.0  # fallback_clock time before which a degraded limiter skips Redis

    async def start(self) -> None:
        """Connect and load the script; if Redis is down, start degraded."""
        try:
            await self.redis.start()
        except _FAILURES as exc:
            self._failed(exc)
        else:
            self._recovered()

    async def flush(self) -> None:
        """Wait for the charges on their way to Redis."""
        if self._charges:
            await asyncio.wait(list(self._charges))

    async def close(self) -> None:
        if self._charges:
            await asyncio.wait(list(self._charges), timeout=self.timeout)
        await self.redis.close()

    def set_limits(self, limits: Mapping[str, Limits], now: float = 0.0) -> None:
        """Take a reloaded configuration; the state of every tenant in Redis is kept
        (``now`` is unused: Redis keeps its own times)."""
        self._limits = dict(limits)
        self._local.set_limits(limits, self._clock())

    async def admit(self, tenant: str, now: float) -> float:
        """0 to go ahead (one request is taken), else the seconds to wait (``Retry-After``).

        ``now`` is wall-clock seconds (``time.time()``). ``KeyError`` if the tenant is not
        configured.
        """
        limits = self._limits[tenant]
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return 0.0
        if self._reachable():
            try:
                wait = await self.redis.admit(tenant, limits, now)
            except _FAILURES as exc:
                self._failed(exc)
            else:
                self._recovered()
                return wait
        self.fallbacks += 1
        return await self._local.admit(tenant, self._clock())

    def charge_tokens(self, tenant: str, tokens: int, now: float) -> None:
        """Charge the tokens a response used, in the background; the level may go negative."""
        limits = self._limits.get(tenant)
        if limits is None or limits.tokens_per_minute is None:
            return
        task = asyncio.get_running_loop().create_task(self._charge(tenant, limits, tokens, now))
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    async def _charge(self, tenant: str, limits: Limits, tokens: int, now: float) -> None:
        if self._reachable():
            try:
                await self.redis.charge(tenant, limits, tokens, now)
            except _FAILURES as exc:
                self._failed(exc)
            else:
                self._recovered()
                return
        self.fallbacks += 1
        self._local.charge_tokens(tenant, tokens, self._clock())

    # -- failing open -------------------------------------------------------

    def _reachable(self) -> bool:
        """Whether to ask Redis: always while it answers, once per interval while not."""
        if not self.redis.started:
            raise RuntimeError("RedisLimiter.start() has not been awaited")
        if not self.degraded:
            return True
        if self._clock() < self._retry_at:
            return False
        self._retry_at = self._clock() + self.retry_interval  # one probe per interval
        return True

    def _failed(self, exc: BaseException) -> None:
        if not self.degraded:
            self.degraded = True
            log.warning(
                "rate limits: Redis failed (%s: %s); each process enforces them alone until "
                "Redis is back",
                type(exc).__name__,
                exc,
            )
        self._retry_at = self._clock() + self.retry_interval

    def _recovered(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("rate limits: Redis is back; limits are shared again")
