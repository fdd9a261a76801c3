"""A real single-node Slurm: the contract, plus what only a real cluster shows.

The session fixture starts Slurm with ``scripts/slurm/up.sh`` (Debian's ``slurm-wlm``
and ``munge``; idempotent, a no-op when it already runs). Where it cannot (not root,
no packages) the tests are skipped with a message naming Slurm; under CI (``CI=true``)
they fail instead. Two partitions of the one node stand for two sites: the contract
runs on ``eu-fr``, the tests that take a site down use ``eu-de``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archipel.backends import AttemptState, LaunchRequest, SlurmBackend
from archipel.backends._slurm_parse import Job, _first_host, _parse_wait_status, job_observation

from .contract import (
    RunningBackendContract,
    ShellHarness,
    check_the_workdir_is_where_the_command_starts,
    new_id,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
# Bounds what a test that fails half-way leaves running (ShellHarness sleeps 600 s).
TEST_ARGS = ("--time=3",)


def _backend(slurm_conf: Path, state_dir: Path, partition: str = "eu-fr") -> SlurmBackend:
    return SlurmBackend(
        f"slurm-{partition}", partition, state_dir, slurm_conf=slurm_conf, sbatch_args=TEST_ARGS
    )


def _slurm(slurm_conf: Path, *args: str) -> str:
    env = {**os.environ, "SLURM_CONF": str(slurm_conf)}
    return subprocess.run(
        list(args), env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _job_id(backend_id: str | None) -> str:
    assert backend_id
    return backend_id.rsplit(":", 1)[1]


@pytest.fixture
def harness(slurm_conf: Path, tmp_path: Path) -> ShellHarness:
    return ShellHarness(_backend(slurm_conf, tmp_path / "site"), timeout=60)


@pytest.fixture
def eu_de(slurm_conf: Path, tmp_path: Path) -> Iterator[SlurmBackend]:
    """The second site; put back in service whatever a test did to it."""
    backend = _backend(slurm_conf, tmp_path / "eu-de", "eu-de")
    yield backend
    backend.resume()


class TestSlurmBackend(RunningBackendContract):
    pass


def test_env_and_workdir_reach_the_job(harness: ShellHarness, tmp_path: Path) -> None:
    a = new_id()
    value = "a,b c'd\"e$HOME"
    request = LaunchRequest(
        a,
        ["/bin/sh", "-c", 'echo "v=$TRICKY"; pwd; echo "$ARCHIPEL_ATTEMPT_ID"'],
        env={"TRICKY": value},
        workdir=str(tmp_path),
    )
    assert harness.backend.launch(request).ok
    assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
    out = harness.backend.logs(a).data.decode()
    assert f"v={value}\n{tmp_path}\n{a}\n" in out


def test_launch_is_idempotent_across_a_restarted_control_plane(
    slurm_conf: Path, tmp_path: Path
) -> None:
    """A new backend finds the job: by the id it recorded, or by name in the controller."""
    marker = tmp_path / "starts"
    a = new_id()
    request = LaunchRequest(a, ["/bin/sh", "-c", f"echo start >> {marker}; sleep 600"])
    first = _backend(slurm_conf, tmp_path / "site").launch(request)
    restarted = _backend(slurm_conf, tmp_path / "site")
    elsewhere = _backend(slurm_conf, tmp_path / "lost-state")  # its state folder was lost
    assert restarted.launch(request).backend_id == first.backend_id
    assert elsewhere.launch(request).backend_id == first.backend_id
    harness = ShellHarness(restarted, timeout=60)
    assert wait_for(harness, a, {AttemptState.RUNNING}).state is AttemptState.RUNNING
    jobs = _slurm(slurm_conf, "squeue", "-h", "-t", "all", "-n", f"archipel-{a}", "-o", "%i")
    assert jobs.split() == [_job_id(first.backend_id)]
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:  # the command's first line ran
        time.sleep(0.05)
    elsewhere.cancel(a)  # found by name too
    assert wait_for(harness, a, {AttemptState.CANCELLED}).state is AttemptState.CANCELLED
    assert marker.read_text() == "start\n"


def test_a_partition_set_down_is_unhealthy_and_refuses_work(eu_de: SlurmBackend) -> None:
    assert eu_de.health().healthy
    eu_de.drain()
    health = eu_de.health()
    assert not health.healthy
    assert "eu-de" in (health.reason or "") and "down" in (health.reason or "")
    result = eu_de.launch(LaunchRequest(new_id(), ["true"]))
    assert not result.ok and result.retryable and result.error == health.reason
    eu_de.resume()
    assert eu_de.health().healthy


def test_a_running_job_names_the_node_it_runs_on(harness: ShellHarness) -> None:
    a = new_id()
    harness.backend.launch(LaunchRequest(a, harness.command(0, forever=True)))
    obs = wait_for(harness, a, {AttemptState.RUNNING})
    assert obs.host == socket.gethostname().split(".")[0]  # the node is `hostname -s`
    harness.backend.cancel(a)


def test_a_job_cancelled_by_someone_else_is_cancelled(
    harness: ShellHarness, slurm_conf: Path
) -> None:
    a = new_id()
    launched = harness.backend.launch(LaunchRequest(a, harness.command(0, forever=True)))
    wait_for(harness, a, {AttemptState.RUNNING})
    _slurm(slurm_conf, "scancel", _job_id(launched.backend_id))
    obs = wait_for(harness, a, {AttemptState.CANCELLED})
    assert obs.state is AttemptState.CANCELLED


def _job_pids(slurm_conf: Path, job_id: str) -> list[int]:
    """The job's processes on the node (once its step has registered them)."""
    deadline = time.monotonic() + 10
    while True:
        env = {**os.environ, "SLURM_CONF": str(slurm_conf)}
        done = subprocess.run(
            ["scontrol", "listpids", job_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        pids = [
            int(line.split()[0])
            for line in done.stdout.splitlines()[1:]
            if line.split() and line.split()[0].isdigit()
        ]
        if pids or time.monotonic() > deadline:
            assert pids, f"no processes for job {job_id}: {done.stderr}"
            return pids
        time.sleep(0.1)


def test_a_job_whose_processes_are_killed_is_not_running(
    harness: ShellHarness, slurm_conf: Path
) -> None:
    a = new_id()
    launched = harness.backend.launch(LaunchRequest(a, harness.command(0, forever=True)))
    assert wait_for(harness, a, {AttemptState.RUNNING}).state is AttemptState.RUNNING
    pids = _job_pids(slurm_conf, _job_id(launched.backend_id))
    for pid in pids:  # the job's own processes, started by this test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    obs = wait_for(harness, a, {AttemptState.FAILED, AttemptState.PREEMPTED})
    assert obs.state in {AttemptState.FAILED, AttemptState.PREEMPTED}
    assert obs.reason


def test_a_two_site_cluster_keeps_attempts_apart(
    harness: ShellHarness, eu_de: SlurmBackend
) -> None:
    """The same attempt id is unknown at a site (partition) it was not launched on."""
    a = new_id()
    harness.backend.launch(LaunchRequest(a, harness.command(0)))
    assert eu_de.observe([a])[a].state is AttemptState.UNKNOWN
    assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED


def test_a_job_the_controller_forgot_is_read_from_its_folder(harness: ShellHarness) -> None:
    """After MinJobAge (no accounting) the exit status the batch script kept answers."""
    backend = harness.backend
    assert isinstance(backend, SlurmBackend)
    done, lost = new_id(), new_id()
    for a, code in ((done, "0"), (lost, None)):
        folder = backend.state_dir / a
        folder.mkdir(parents=True)
        (folder / "job_id").write_text("999999\n")
        if code is not None:
            (folder / "exit_code").write_text(code)
    seen = backend.observe([done, lost])
    assert seen[done].state is AttemptState.SUCCEEDED
    assert seen[lost].state is AttemptState.PREEMPTED
    assert "no longer knows" in (seen[lost].reason or "")


def test_what_the_cluster_cannot_run_is_refused_so_another_site_can_try(
    harness: ShellHarness,
) -> None:
    backend = harness.backend
    gpus = backend.launch(LaunchRequest(new_id(), ["true"], accelerators="H100:1"))
    assert not gpus.ok and gpus.retryable and "gres" in (gpus.error or "")
    nodes = backend.launch(LaunchRequest(new_id(), ["true"], nodes=64))
    assert not nodes.ok and nodes.retryable and nodes.error


def test_a_missing_partition_is_unhealthy(slurm_conf: Path, tmp_path: Path) -> None:
    backend = _backend(slurm_conf, tmp_path / "site", "no-such-partition")
    health = backend.health()
    assert not health.healthy and "does not exist" in (health.reason or "")
    result = backend.launch(LaunchRequest(new_id(), ["true"]))
    assert not result.ok and result.retryable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_an_unreachable_controller_is_data_not_an_exception(
    slurm_conf: Path, tmp_path: Path
) -> None:
    conf = tmp_path / "slurm.conf"
    text = re.sub(
        r"(?m)^SlurmctldPort=.*$", f"SlurmctldPort={_free_port()}", slurm_conf.read_text()
    )
    conf.write_text(re.sub(r"(?m)^MessageTimeout=.*$", "MessageTimeout=2", text))
    backend = SlurmBackend("nowhere", "eu-fr", tmp_path / "site", slurm_conf=conf)
    a = new_id()
    assert not backend.health().healthy
    result = backend.launch(LaunchRequest(a, ["true"]))
    assert not result.ok and result.retryable and "contact" in (result.error or "")
    obs = backend.observe([a])[a]
    assert obs.state is AttemptState.UNOBSERVED and "cannot query Slurm" in (obs.reason or "")
    backend.cancel(a)  # no error


def test_a_tool_that_hangs_is_cut_short(slurm_conf: Path, tmp_path: Path) -> None:
    """Without a config the tools look for one for a long time: the timeout answers."""
    backend = SlurmBackend(
        "hanging",
        "eu-fr",
        tmp_path / "site",
        slurm_conf=tmp_path / "missing.conf",
        command_timeout=0.5,
    )
    health = backend.health()
    assert not health.healthy and "did not answer within 0.5s" in (health.reason or "")
    a = new_id()
    assert backend.observe([a])[a].state is AttemptState.UNOBSERVED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", (0, None)),
        ("768", (3, None)),
        ("9", (None, 9)),
        ("3:0", (3, None)),
        ("0:9", (0, 9)),
        ("", (None, None)),
    ],
)
def test_exit_statuses_are_decoded(text: str, expected: tuple[int | None, int | None]) -> None:
    assert _parse_wait_status(text) == expected


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [
        pytest.param("node7", "node7", id="one node"),
        pytest.param("node[01-03]", "node01", id="a range keeps its padding"),
        pytest.param("gpu[4,6-8],cpu1", "gpu4", id="a list of ranges, then another name"),
        pytest.param("n1,n2", "n1", id="plain names"),
        pytest.param("rack[1-2]-gpu[3-4]", "rack1-gpu3", id="two bracket groups"),
        pytest.param("", None, id="pending: no node yet"),
        pytest.param("(null)", None, id="squeue's null"),
        pytest.param("None assigned", None, id="sacct's none"),
    ],
)
def test_the_first_node_of_a_node_list_is_the_host(nodelist: str, host: str | None) -> None:
    assert _first_host(nodelist) == host


def test_the_workdir_is_where_the_job_starts(harness: ShellHarness, tmp_path: Path) -> None:
    check_the_workdir_is_where_the_command_starts(harness, tmp_path)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param("RUNNING", AttemptState.RUNNING, id="running"),
        pytest.param("COMPLETED", AttemptState.SUCCEEDED, id="completed"),
        pytest.param("PREEMPTED", AttemptState.PREEMPTED, id="preempted"),
        pytest.param("NODE_FAIL", AttemptState.PREEMPTED, id="a lost node"),
        # a state a newer Slurm invents says nothing about whether the job is gone
        pytest.param("RESV_DEL_HOLD2", AttemptState.UNOBSERVED, id="an unknown state"),
    ],
)
def test_slurm_job_states_map_to_attempt_states(state: str, expected: AttemptState) -> None:
    job = Job(job_id="42", state=state, exit_code=0, signal=None, reason=None)
    assert job_observation("a-1", job, "eu-fr/42").state is expected
