"""Every benchmark script still runs: its imports resolve against today's code.

Benchmarks are not run by the suite (wall-clock figures belong to a quiet machine, never to
a test), but a script that no longer imports is a benchmark nobody can rerun: a refactor
that moves a name must move it here too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
SCRIPTS = sorted(BENCH.rglob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(BENCH)) for p in SCRIPTS])
def test_a_benchmark_script_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
