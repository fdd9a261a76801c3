"""The EC2 emulator's fixtures, shared by the EC2 backend's test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.aws_emulator import Emulated, aws_environment, emulator, make_site


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto in server mode on a loopback port, one per test module."""
    with emulator() as url:
        yield url


@pytest.fixture
def site(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulated:
    """An EC2 site on the emulator, boto3 seeing dummy credentials only."""
    aws_environment(monkeypatch)
    return make_site(moto_url, tmp_path / "site")
