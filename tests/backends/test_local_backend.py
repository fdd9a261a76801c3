"""Processes on this machine: the contract, plus what only a real process shows."""

from __future__ import annotations

import pwd
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from archipel.backends import AttemptState, LaunchRequest, LocalBackend
from archipel.core import InputError

from .contract import (
    RunningBackendContract,
    ShellHarness,
    check_the_workdir_is_where_the_command_starts,
    new_id,
    wait_for,
)


@pytest.fixture
def harness(tmp_path: Path) -> ShellHarness:
    return ShellHarness(LocalBackend("local-test", tmp_path / "site"))


class TestLocalBackend(RunningBackendContract):
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


# --- run_as: attempts as an unprivileged user ------------------------------------------


@pytest.mark.parametrize(
    ("user", "message"),
    [
        pytest.param("no-such-user-4f1c", "useradd", id="a user that does not exist"),
        pytest.param("root", "unprivileged", id="root"),
    ],
)
def test_run_as_names_an_existing_unprivileged_user(
    tmp_path: Path, user: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        LocalBackend("lab", tmp_path / "site", run_as=user)


@pytest.fixture
def run_as_site(
    make_user: Callable[[], str], passable_tmp: Path
) -> Iterator[tuple[LocalBackend, str]]:
    user = make_user()
    backend = LocalBackend("lab", passable_tmp / "site", run_as=user)
    yield backend, user
    backend.kill_all()


def _snoop(paths: Sequence[Path]) -> list[str]:
    """A command printing who it runs as, then `read PATH` or `denied PATH` for each path."""
    script = (
        'id -un; for f in "$@"; do '
        'if cat "$f" >/dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi; done'
    )
    return ["/bin/sh", "-c", script, "snoop", *map(str, paths)]


def test_an_attempt_run_as_a_user_reads_neither_the_servers_files_nor_other_output(
    run_as_site: tuple[LocalBackend, str], passable_tmp: Path
) -> None:
    backend, user = run_as_site
    harness = ShellHarness(backend)
    server_file = passable_tmp / "token"  # as `archipel server` writes its token
    server_file.write_text("arch_admin-secret\n")
    server_file.chmod(0o600)
    other = new_id()
    backend.launch(LaunchRequest(other, ["/bin/sh", "-c", "echo another-attempts-output"]))
    assert wait_for(harness, other, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
    other_output = backend.state_dir / "attempts" / other / "output.log"
    a = new_id()
    backend.launch(LaunchRequest(a, _snoop([server_file, other_output])))
    assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
    lines = backend.logs(a).data.decode().splitlines()
    assert lines == [user, f"denied {server_file}", f"denied {other_output}"]
    assert b"another-attempts-output" in backend.logs(other).data  # the server still reads it


def test_an_attempt_run_as_a_user_writes_its_checkpoint_and_the_server_still_controls_it(
    run_as_site: tuple[LocalBackend, str], passable_tmp: Path
) -> None:
    backend, user = run_as_site
    checkpoint = passable_tmp / "checkpoints" / "r-1"
    checkpoint.mkdir(parents=True)  # made by the server, handed over at launch
    a = new_id()
    request = LaunchRequest(
        a,
        ["/bin/sh", "-c", 'echo step > "$CKPT/state"; echo "home=$HOME"; sleep 600'],
        env={"CKPT": str(checkpoint)},
        writable=[str(checkpoint)],
    )
    launched = backend.launch(request)
    restarted = LocalBackend("lab", backend.state_dir, run_as=user)  # a new server process
    assert restarted.launch(request).backend_id == launched.backend_id
    harness = ShellHarness(restarted)
    assert wait_for(harness, a, {AttemptState.RUNNING}).state is AttemptState.RUNNING
    deadline = time.monotonic() + 10
    while not (checkpoint / "state").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (checkpoint / "state").read_text() == "step\n"
    assert (checkpoint / "state").stat().st_uid == pwd.getpwnam(user).pw_uid
    restarted.cancel(a)
    assert wait_for(harness, a, {AttemptState.CANCELLED}).state is AttemptState.CANCELLED
    assert b"home=/nonexistent\n" in restarted.logs(a).data  # the run user's, not root's


def test_the_workdir_is_where_the_command_starts(harness: ShellHarness, tmp_path: Path) -> None:
    check_the_workdir_is_where_the_command_starts(harness, tmp_path)
