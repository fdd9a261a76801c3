"""Progress shows on a watched terminal's stderr, and nowhere else."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from archipel.cli._progress import progress

ROOT = Path(__file__).resolve().parents[2]


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=80), out


@pytest.mark.parametrize(
    ("terminal", "quiet", "shown"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
    ids=["terminal", "terminal-json", "pipe", "pipe-json"],
)
def test_progress_shows_only_on_a_terminal_without_json(
    terminal: bool, quiet: bool, shown: bool
) -> None:
    console, out = _console(terminal)
    with progress("refreshing the catalog", total=2, quiet=quiet, console=console) as bar:
        bar.update("refreshing the catalog: example.org", advance=1)
        assert bar.shown is shown
    assert ("refreshing the catalog" in out.getvalue()) is shown


def test_a_delayed_spinner_stays_hidden_for_quick_work() -> None:
    console, out = _console(terminal=True)
    with progress("planning fleet lab (HiGHS)", after=60.0, console=console):
        pass
    assert "planning fleet" not in out.getvalue()


@pytest.mark.parametrize(
    "args",
    [
        ["fleet", "plan", "examples/fleet/lab.yaml"],
        ["fleet", "plan", "examples/fleet/lab.yaml", "--json"],
        ["policy", "check", "src/archipel/policy/default_policy.yaml"],
    ],
    ids=["fleet-table", "fleet-json", "policy-check"],
)
def test_a_piped_command_prints_no_progress(args: list[str]) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("archipel")), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for mark in ["\r", "\x1b[?25l", "⠋", "planning fleet"]:
        assert mark not in done.stdout
