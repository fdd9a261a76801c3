"""Per-tenant rate limits (requests and tokens per minute): the :class:`Limiter`
protocol the request path uses, and its in-process implementation.

Token buckets, I/O-free, time passed in. The token limit is charged after the
response, when the usage is known, so a tenant may overdraw by one request;
its next request then waits until the bucket is positive again.

Two limiters satisfy the protocol: :class:`InProcessLimiter` (each process
alone) and :class:`~archipel.gateway._limits_redis.RedisLimiter` (shared by
every process through Redis). The gateway picks one when it starts; the
request path only calls :meth:`Limiter.admit` and :meth:`Limiter.charge_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from archipel.gateway._config import Limits


class Limiter(Protocol):
    """Per-tenant request and token limits, as the request path uses them.

    ``admit`` of a tenant that is not configured is a caller error (``KeyError``);
    ``charge_tokens`` ignores it (the request was admitted before a reload removed
    the tenant). ``now`` is the clock the limiter was made for: monotonic for the
    in-process one, wall-clock seconds for the shared one.
    """

    async def start(self) -> None:
        """Get ready before the first request (connect, load scripts)."""

    async def close(self) -> None:
        """Release what :meth:`start` took; charges on their way are waited for first."""

    async def flush(self) -> None:
        """Wait until the charges made so far have arrived."""

    def set_limits(self, limits: Mapping[str, Limits], now: float) -> None:
        """Take a reloaded configuration: a tenant whose limits did not change keeps its
        buckets (a reload is no way to reset a rate limit)."""

    async def admit(self, tenant: str, now: float) -> float:
        """0 to go ahead (one request is taken), else the seconds to wait (``Retry-After``)."""

    def charge_tokens(self, tenant: str, tokens: int, now: float) -> None:
        """Charge the tokens an answer used, off the request's path; the level may go
        negative. A shared limiter sends the charge in the background."""


class TokenBucket:
    """``capacity`` units refilled at ``capacity`` per minute; the level may go negative."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.last = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + max(now - self.last, 0.0) * self.rate)
        self.last = now

    def wait(self, need: float, now: float) -> float:
        """Seconds until ``need`` units are there (0 if they are: then they are taken)."""
        self._refill(now)
        if self.level >= need:
            self.level -= need
            return 0.0
        return (need - self.level) / self.rate

    def overdrawn(self, now: float) -> float:
        """Seconds until the level is positive again (0 if it is)."""
        self._refill(now)
        return 0.0 if self.level > 0 else (1.0 - self.level) / self.rate

    def charge(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount


def split(limits: Limits, share: int) -> Limits:
    """One of ``share`` equal parts of ``limits``, rounded up (a limit stays at least 1)."""
    if share == 1:
        return limits

    def part(per_minute: int | None) -> int | None:
        return None if per_minute is None else -(-per_minute // share)

    return Limits(
        requests_per_minute=part(limits.requests_per_minute),
        tokens_per_minute=part(limits.tokens_per_minute),
    )


class TenantLimiter:
    """A tenant's request and token buckets; either may be absent (unlimited)."""

    __slots__ = ("requests", "tokens")

    def __init__(self, limits: Limits, now: float) -> None:
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = None if rpm is None else TokenBucket(rpm, now)
        self.tokens = None if tpm is None else TokenBucket(tpm, now)

    def admit(self, now: float) -> float:
        """0 to go ahead (one request is taken), else the seconds to wait (``Retry-After``)."""
        if self.tokens is not None:
            wait = self.tokens.overdrawn(now)
            if wait > 0:
                return wait
        if self.requests is not None:
            return self.requests.wait(1.0, now)
        return 0.0

    def charge_tokens(self, tokens: int, now: float) -> None:
        if self.tokens is not None:
            self.tokens.charge(tokens, now)


class InProcessLimiter:
    """A :class:`Limiter` whose buckets live in this process.

    With ``share`` above 1 (the gateway's worker processes), each limit is split that
    many ways, rounded up: the workers together admit about what one process would.
    A tenant whose requests all reach one worker then meets its limit early, by up
    to a factor ``share``; limits shared through Redis have no such split.
    """

    __slots__ = ("_limits", "share", "tenants")

    def __init__(self, limits: Mapping[str, Limits], now: float, share: int = 1) -> None:
        if share < 1:
            raise ValueError(f"share must be at least 1, not {share}")
        self.share = share
        self._limits: dict[str, Limits] = {}
        self.tenants: dict[str, TenantLimiter] = {}
        self.set_limits(limits, now)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    def set_limits(self, limits: Mapping[str, Limits], now: float) -> None:
        tenants = {}
        for name, spec in limits.items():
            kept = self.tenants.get(name)
            same = kept is not None and self._limits.get(name) == spec
            if not same or kept is None:
                kept = TenantLimiter(split(spec, self.share), now)
            tenants[name] = kept
        self._limits, self.tenants = dict(limits), tenants

    async def admit(self, tenant: str, now: float) -> float:
        return self.tenants[tenant].admit(now)

    def charge_tokens(self, tenant: str, tokens: int, now: float) -> None:
        limiter = self.tenants.get(tenant)
        if limiter is not None:
            limiter.charge_tokens(tokens, now)
