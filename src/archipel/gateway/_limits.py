"""Per-tenant rate limits (requests and tokens per minute), in process.

Token buckets, I/O-free, time passed in. The token limit is charged after the
response, when the usage is known, so a tenant may overdraw by one request;
its next request then waits until the bucket is positive again.
"""

from __future__ import annotations

from archipel.gateway._config import Limits


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
