"""The in-memory fake passes the backend contract."""

from __future__ import annotations

import pytest

from archipel.backends import FakeBackend

from .contract import FakeHarness, RunningBackendContract


@pytest.fixture
def harness() -> FakeHarness:
    return FakeHarness(FakeBackend())


class TestFakeBackend(RunningBackendContract):
    pass
