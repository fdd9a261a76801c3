"""Sweeps: a scenario's strategies under several seeds, in worker processes, summarised."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archipel.cli._simulate import catalog_and_policy
from archipel.core import CatalogSnapshot
from archipel.policy import Policy
from archipel.sim._sweep import Spread, summarize, sweep

from .test_portfolio import CHEAP, DEAR, run, scenario, trace

JOBS = [(n * 600.0, 1800.0 + 120 * (n % 5)) for n in range(12)]
EXTRA = {
    "sites": [CHEAP, DEAR],
    "strategies": {"cheap": {"sites": ["cheap"]}, "both": {}},
    "outages": {"scaleway": {"mtbf_hours": 1, "mttr_hours": 0.25}},
    "data_classes": {"public": 0.5, "health": 0.5},
}


def test_a_sweep_in_two_processes_gives_each_seeds_own_figures(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    parsed = scenario(tmp_path, trace(tmp_path, *JOBS), **EXTRA)
    loader = functools.partial(catalog_and_policy, None)
    results = sweep(parsed, [3, 4], loader, workers=2)
    assert [(s, seed) for s, seed, _ in results] == [
        ("cheap", 3), ("cheap", 4), ("both", 3), ("both", 4)
    ]  # fmt: skip
    for strategy, seed, outcome in results:  # the same as that seed run on its own
        folder = tmp_path / f"{strategy}-{seed}"
        folder.mkdir()
        alone = run(folder, snapshot, policy, *JOBS, **{**EXTRA, "seed": seed,
                    "strategies": {strategy: EXTRA["strategies"][strategy]}})  # fmt: skip
        assert outcome == alone


def test_the_summary_is_each_figures_mean_and_range(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> None:
    parsed = scenario(tmp_path, trace(tmp_path, *JOBS), **EXTRA)
    results = sweep(parsed, [1, 2, 3], functools.partial(catalog_and_policy, None))
    [cheap, both] = summarize(results)
    costs = [float(o.cost) for s, _, o in results if s == "both"]
    assert both.cost == Spread(sum(costs) / 3, min(costs), max(costs))
    assert (cheap.strategy, cheap.seeds, both.seeds) == ("cheap", 3, 3)
    assert cheap.violations == both.violations == 0


def test_the_cli_sweeps_with_seeds(tmp_path: Path) -> None:
    jobs = trace(tmp_path, (0, 3600), (600, 3600))
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": "sw", "seed": 5, "trace": {"openb": jobs.name},
                                "sites": [CHEAP], "strategies": {"one": {}}, "drain_hours": 5}))  # fmt: skip
    archipel = str(Path(sys.executable).parent / "archipel")
    shown = subprocess.run(
        [archipel, "simulate", str(spec), "--seeds", "2", "--workers", "1", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(tmp_path)},
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["seeds"] == [5, 6]
    assert [(r["strategy"], r["seed"]) for r in doc["runs"]] == [("one", 5), ("one", 6)]
    [one] = doc["summary"]
    assert one["cost"] == {"mean": 7.2, "low": 7.2, "high": 7.2}  # 2 GPU-hours at 3.60
    from archipel.sim._report import render_scenario_html

    html = render_scenario_html(doc)
    assert "seeds 5 to 6 (means, and ranges)" in html and html.count("<svg") == 2


#: a test cluster on this machine: no token to share (a real cluster keeps Ray's default)
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A Ray cluster of one head on loopback, started for the test and ended by its pid."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are long
    ray = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, **RAY_ENV}
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
    )  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run([ray, "status", f"--address={address}"],
                             capture_output=True, env=env).returncode != 0:  # fmt: skip
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not come up in 120 s"
            time.sleep(1)
        yield address
    finally:  # the head's session: `ray start` and every process it started
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_on_ray_gives_what_local_processes_give(tmp_path: Path, ray_head: str) -> None:
    """The same scenario and seeds, swept on the Ray cluster and on local processes: the
    same JSON, byte for byte (the order of results is the tasks', not the finishing)."""
    spec = tmp_path / "s.yaml"
    jobs = trace(tmp_path, *JOBS)
    spec.write_text(json.dumps({"name": "sw", "seed": 3, "trace": {"openb": jobs.name},
                                **EXTRA, "drain_hours": 5}))  # fmt: skip
    archipel = str(Path(sys.executable).parent / "archipel")
    env = {**os.environ, **RAY_ENV, "ARCHIPEL_DATA_DIR": str(tmp_path)}
    common = [archipel, "simulate", str(spec), "--seeds", "2", "--json"]
    on_ray = subprocess.run([*common, "--ray", ray_head], capture_output=True, text=True, env=env)
    assert on_ray.returncode == 0, on_ray.stderr
    local = subprocess.run([*common, "--workers", "2"], capture_output=True, text=True, env=env)
    assert local.returncode == 0, local.stderr
    assert on_ray.stdout == local.stdout
    doc = json.loads(on_ray.stdout)
    assert [(r["strategy"], r["seed"]) for r in doc["runs"]] == [
        ("cheap", 3), ("cheap", 4), ("both", 3), ("both", 4)
    ]  # fmt: skip


def test_ray_is_for_sweeps(tmp_path: Path) -> None:
    jobs = trace(tmp_path, (0, 60))
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": "sw", "trace": {"openb": jobs.name}, "sites": [CHEAP],
                                "strategies": {"one": {}}}))  # fmt: skip
    archipel = str(Path(sys.executable).parent / "archipel")
    once = subprocess.run([archipel, "simulate", str(spec), "--ray", "local"],
                          capture_output=True, text=True)  # fmt: skip
    assert once.returncode == 2 and "--ray runs a sweep: give --seeds 2 or more" in once.stderr
