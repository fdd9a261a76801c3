"""Shared fixtures (the shipped snapshot and the default policy, loaded once), the
Hypothesis profile, and the CI rule that a skipped test fails the run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from tests.profiles import in_ci, profile_name

from archipel.catalog import load_snapshot
from archipel.core import CatalogSnapshot
from archipel.placement import Planner
from archipel.policy import Policy, default_policy

settings.load_profile(profile_name())


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Under the ``ci`` profile every run draws a fresh seed, printed so it can be replayed."""
    if settings.get_current_profile_name() != "ci":
        return
    if config.getoption("hypothesis_seed", None) is None:
        seed = os.environ.get("HYPOTHESIS_SEED") or str(random.SystemRandom().randrange(2**32))
        config.option.hypothesis_seed = seed


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    replay = f", seed {seed} (replay: HYPOTHESIS_SEED={seed})" if seed is not None else ""
    return f"hypothesis profile {settings.get_current_profile_name()}{replay}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    seed = terminalreporter.config.getoption("hypothesis_seed", None)
    if seed is not None and terminalreporter.stats.get("failed"):
        terminalreporter.write_line(f"hypothesis seed of this run: HYPOTHESIS_SEED={seed}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``CI=true`` a skipped test is a failed one: CI must run everything.

    A service the tests need (PostgreSQL, Redis, Slurm) that is down, or a skip
    marker that holds on the CI machine, fails the run with the skip's reason.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


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
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return SLURM_DIR / "etc" / "slurm.conf"


@pytest.fixture
def make_user() -> Iterator[Callable[[], str]]:
    """Create throwaway unprivileged users (``useradd``), removed after the test.

    Needs root: skipped with a message otherwise (a failure under CI=true).
    """
    why = None
    if os.geteuid() != 0:
        why = "the tests do not run as root"
    elif shutil.which("useradd") is None or shutil.which("userdel") is None:
        why = "useradd/userdel are not installed"
    if why is not None:
        pytest.skip(f"a run_as test creates an unprivileged user, and cannot: {why}")
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
