"""Per-tenant rate limits, in virtual time."""

from __future__ import annotations

import pytest

from archipel.gateway._config import Limits
from archipel.gateway._limits import TenantLimiter


def test_requests_per_minute_refill_over_time() -> None:
    limiter = TenantLimiter(Limits(requests_per_minute=2), now=0)
    assert [limiter.admit(0), limiter.admit(0)] == [0, 0]
    assert limiter.admit(0) == 30.0  # one request comes back every 30 s
    assert limiter.admit(30) == 0


def test_tokens_are_charged_after_the_fact_and_block_until_repaid() -> None:
    limiter = TenantLimiter(Limits(tokens_per_minute=600), now=0)
    assert limiter.admit(0) == 0
    limiter.charge_tokens(900, now=0)  # one request may overdraw
    assert limiter.admit(0) == pytest.approx(30.1)  # -300 tokens at 10/s, then one more
    assert limiter.admit(31) == 0


def test_no_limits_means_no_waiting() -> None:
    limiter = TenantLimiter(Limits(), now=0)
    limiter.charge_tokens(10**9, now=0)
    assert limiter.admit(0) == 0
