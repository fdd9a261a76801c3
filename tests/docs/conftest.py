"""The doc tests' summary: how many console blocks ran, and which were skipped and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from .blocks import skipped_blocks

REPO = Path(__file__).resolve().parents[2]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    outcomes = ("passed", "failed")
    ran = [
        r for outcome in outcomes for r in terminalreporter.stats.get(outcome, [])
        if "test_console_block[" in getattr(r, "nodeid", "")
    ]  # fmt: skip
    if not ran:
        return
    skipped = skipped_blocks(REPO)
    terminalreporter.section("doc blocks")
    terminalreporter.write_line(f"{len(ran)} console blocks run, {len(skipped)} not run:")
    for block in skipped:
        terminalreporter.write_line(f"  {block.where}: skip {block.skip_reason}")
