"""Recovery on real Slurm sites: two partitions of the test cluster are two sites.

A training job checkpoints on `eu-fr`; the partition is taken down; the
reconciler moves the run to `eu-de`, where it resumes from its checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.core import CatalogSnapshot, RunState, parse_workload
from archipel.policy import Policy

from .conftest import SLURM_SITES, slurm_backend

ROOT = Path(__file__).resolve().parents[2]


def test_a_drained_partition_moves_the_run_to_the_other_site_which_resumes_it(
    slurm_conf: Path, tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    backends = {s.name: slurm_backend(s, slurm_conf, tmp_path / s.name) for s in SLURM_SITES}
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    sites = {s.name: Site(s, backends[s.name]) for s in SLURM_SITES}
    reconciler = Reconciler(
        store, sites, SitePlacer(SLURM_SITES, snapshot, policy), tmp_path / "ck"
    )
    run = store.submit(
        "acme",
        parse_workload(
            {
                "name": "slurm-train",
                "kind": "training",
                "resources": {"accelerators": "cpu:1"},
                "data": {"class": "health"},
                "run": {
                    "command": [
                        sys.executable,
                        str(ROOT / "examples/controlplane/train.py"),
                        "--steps",
                        "25",
                        "--step-seconds",
                        "0.2",
                    ],
                    "max_restarts": 2,
                },
            }
        ),
    )
    checkpoint = tmp_path / "ck" / run.id / "checkpoint.json"

    def step_until(condition: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reconciler.step()
            if callable(condition) and condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out; history: {[e.detail for e in store.events(run.id)]}")

    try:
        step_until(
            lambda: checkpoint.exists() and json.loads(checkpoint.read_text())["step"] >= 3, 60
        )
        assert store.get(run.id).site == "slurm-fr"  # type: ignore[union-attr]
        backends["slurm-fr"].drain()
        drained_at = time.monotonic()
        step_until(lambda: store.get(run.id).site == "slurm-de", 30)  # type: ignore[union-attr]
        recovery = time.monotonic() - drained_at
        step_until(lambda: store.get(run.id).state is RunState.SUCCEEDED, 60)  # type: ignore[union-attr]
    finally:
        backends["slurm-fr"].resume()
        store.close()
    assert recovery < 5, recovery
    final = store.get(run.id)
    assert final is not None and final.restarts == 1 and final.blocked_sites == ("slurm-fr",)
    output = backends["slurm-de"].logs(final.attempt_id or "").data.decode()
    assert "restart 1: resuming from step" in output and "resuming from step 0" not in output
