"""Processes on this machine: the contract, plus what only a real process shows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from archipel.backends import AttemptState, LaunchRequest, LocalBackend

from .contract import BackendContract, ShellHarness, new_id, wait_for


@pytest.fixture
def harness(tmp_path: Path) -> ShellHarness:
    return ShellHarness(LocalBackend("local-test", tmp_path / "site"))


class TestLocalBackend(BackendContract):
    pass


def test_env_reaches_the_process(harness: ShellHarness) -> None:
    a = new_id()
    request = LaunchRequest(
        a,
        ["/bin/sh", "-c", 'echo "restart=$ARCHIPEL_RESTART_COUNT"'],
        env={"ARCHIPEL_RESTART_COUNT": "2"},
    )
    harness.backend.launch(request)
    wait_for(harness, a, {AttemptState.SUCCEEDED})
    assert b"restart=2" in harness.backend.logs(a).data


def test_a_second_backend_on_the_same_folder_adopts_instead_of_relaunching(
    tmp_path: Path,
) -> None:
    """A restarted control plane must not start an attempt twice."""
    marker = tmp_path / "starts"
    first = LocalBackend("local", tmp_path / "site")
    a = new_id()
    request = LaunchRequest(a, ["/bin/sh", "-c", f"echo start >> {marker}; sleep 600"])
    launched = first.launch(request)
    restarted = LocalBackend("local", tmp_path / "site")
    again = restarted.launch(request)
    assert again.backend_id == launched.backend_id
    harness = ShellHarness(restarted)
    assert wait_for(harness, a, {AttemptState.RUNNING}).state is AttemptState.RUNNING
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:  # the command's first line ran
        time.sleep(0.02)
    restarted.cancel(a)
    wait_for(harness, a, {AttemptState.CANCELLED})
    assert marker.read_text() == "start\n"


def test_a_killed_site_reports_its_attempts_preempted(harness: ShellHarness) -> None:
    backend = harness.backend
    assert isinstance(backend, LocalBackend)
    a = new_id()
    backend.launch(LaunchRequest(a, ["/bin/sh", "-c", "sleep 600"]))
    wait_for(harness, a, {AttemptState.RUNNING})
    backend.kill_all()
    obs = wait_for(harness, a, {AttemptState.PREEMPTED})
    assert obs.state is AttemptState.PREEMPTED
    assert "vanished" in (obs.reason or "")


def test_a_site_that_is_down_refuses_new_work(harness: ShellHarness) -> None:
    backend = harness.backend
    assert isinstance(backend, LocalBackend)
    backend.down("maintenance")
    assert not backend.health().healthy
    result = backend.launch(LaunchRequest(new_id(), ["true"]))
    assert not result.ok and result.retryable and result.error == "maintenance"
    backend.up()
    assert backend.health().healthy


def test_unsafe_attempt_ids_are_refused(harness: ShellHarness) -> None:
    with pytest.raises(ValueError, match="safe file name"):
        harness.backend.launch(LaunchRequest("../etc", ["true"]))
