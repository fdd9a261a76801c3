"""Shared fixtures: the shipped snapshot and the default policy, loaded once."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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


REPO = Path(__file__).resolve().parents[1]
UP = REPO / "scripts" / "slurm" / "up.sh"
SLURM_DIR = Path(os.environ.get("ARCHIPEL_SLURM_DIR", "/var/lib/archipel-slurm"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def slurm_conf() -> Path:
    """Start the test Slurm (or find it running) and return its ``slurm.conf``."""
    why = None
    try:
        done = subprocess.run(
            ["bash", str(UP)], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            why = done.stderr.strip()[-2000:] or f"exit status {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = str(exc)
    if why is not None:
        message = f"Slurm (slurm-wlm + munge) could not be started by {UP}: {why}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return SLURM_DIR / "etc" / "slurm.conf"


@pytest.fixture
def make_user() -> Iterator[Callable[[], str]]:
    """Create throwaway unprivileged users (``useradd``), removed after the test.

    Needs root: skipped with a message otherwise, failed under CI.
    """
    why = None
    if os.geteuid() != 0:
        why = "the tests do not run as root"
    elif shutil.which("useradd") is None or shutil.which("userdel") is None:
        why = "useradd/userdel are not installed"
    if why is not None:
        message = f"a run_as test creates an unprivileged user, and cannot: {why}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    created: list[str] = []

    def make() -> str:
        name = f"archipel-t-{uuid.uuid4().hex[:8]}"
        options = ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        subprocess.run(
            ["useradd", *options, "--shell", "/bin/false", name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)


@pytest.fixture
def passable_tmp() -> Iterator[Path]:
    """A temporary folder other users may pass through (0711); pytest's is root's alone."""
    path = Path(tempfile.mkdtemp(prefix="archipel-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)
