"""Fixtures of the gateway tests: the test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from tests.profiles import in_ci

from .harness import REDIS_URL, delete_prefix, redis_sync_client, unique_prefix


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    """A client of the test Redis; skips (fails in CI) when it does not answer."""
    client = redis_sync_client(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        message = f"Redis is not reachable at {REDIS_URL}: {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    name = unique_prefix()
    yield name
    delete_prefix(redis_client, name)
