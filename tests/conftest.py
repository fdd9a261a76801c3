"""Shared fixtures: the shipped snapshot and the default policy, loaded once."""

from __future__ import annotations

import pytest

from archipel.catalog import load_snapshot
from archipel.core import CatalogSnapshot
from archipel.placement import Planner
from archipel.policy import Policy, default_policy


@pytest.fixture(scope="session")
def snapshot() -> CatalogSnapshot:
    return load_snapshot()


@pytest.fixture(scope="session")
def policy() -> Policy:
    return default_policy()


@pytest.fixture(scope="session")
def planner(snapshot: CatalogSnapshot, policy: Policy) -> Planner:
    return Planner(snapshot, policy)
