"""The suite's own rules: under ``CI=true`` a skipped test fails the run; elsewhere
(``CI`` unset, or ``CI=false``) a skip stays a skip with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SKIPPING = """
import pytest

def test_needs_a_service():
    pytest.skip("the service is down")

@pytest.mark.skipif(True, reason="not on this platform")
def test_marked():
    pass

def test_runs():
    assert True
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "HYPOTHESIS_PROFILE"}}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-q",
            "-rA",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_skipping.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_under_ci_every_skip_fails_the_run_with_its_reason(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "skipped under CI=true, which must run every test: Skipped: the service is down" in (
        done.stdout
    )
    assert "not on this platform" in done.stdout
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("ci", [None, "false"], ids=["CI unset", "CI=false"])
def test_outside_ci_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    done = _run(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout
