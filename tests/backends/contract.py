"""The contract every backend passes (see ``archipel.backends._protocol``).

A test module subclasses :class:`BackendContract` and provides a ``harness``
fixture: the backend, how to write a command that exits with a code and prints
lines, and how long to wait. The fake, the local and the Slurm backends all
run these same tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from archipel.backends import AttemptState, Backend, LaunchRequest, Observation


class Harness(Protocol):
    backend: Backend
    timeout: float

    def command(
        self, exit_code: int, lines: Sequence[str] = (), forever: bool = False
    ) -> list[str]:
        """A command printing ``lines`` then exiting with ``exit_code`` (or running on)."""
        ...

    def print_env(self, names: Sequence[str]) -> list[str]:
        """A command printing ``NAME=value`` (``NAME=<unset>``) for each name, exiting 0."""
        ...


@dataclass
class ShellHarness:
    """For backends that run real shell commands."""

    backend: Backend
    timeout: float = 20.0

    def command(
        self, exit_code: int, lines: Sequence[str] = (), forever: bool = False
    ) -> list[str]:
        script = "".join(f"echo '{line}'; " for line in lines)
        script += "sleep 600; " if forever else ""
        return ["/bin/sh", "-c", script + f"exit {exit_code}"]

    def print_env(self, names: Sequence[str]) -> list[str]:
        return ["/bin/sh", "-c", "".join(f'echo "{n}=${{{n}-<unset>}}"; ' for n in names)]


def new_id() -> str:
    return f"a-{uuid.uuid4().hex[:12]}"


def wait_for(harness: Harness, attempt_id: str, states: set[AttemptState]) -> Observation:
    deadline = time.monotonic() + harness.timeout
    while True:
        obs = harness.backend.observe([attempt_id])[attempt_id]
        if obs.state in states or time.monotonic() > deadline:
            return obs
        time.sleep(0.05)


class BackendContract:
    """Shared contract tests every backend passes, even on an emulator that runs no
    command (EC2 on moto); subclasses provide the ``harness`` fixture."""

    def test_a_running_attempt_is_observed_running_and_can_be_cancelled(
        self, harness: Harness
    ) -> None:
        a = new_id()
        harness.backend.launch(LaunchRequest(a, harness.command(0, forever=True)))
        assert wait_for(harness, a, {AttemptState.RUNNING}).state is AttemptState.RUNNING
        harness.backend.cancel(a)
        obs = wait_for(harness, a, {AttemptState.CANCELLED})
        assert obs.state is AttemptState.CANCELLED

    def test_a_running_attempt_names_its_host_or_none(self, harness: Harness) -> None:
        a = new_id()
        harness.backend.launch(LaunchRequest(a, harness.command(0, forever=True)))
        obs = wait_for(harness, a, {AttemptState.RUNNING})
        assert obs.state is AttemptState.RUNNING
        assert obs.host is None or (obs.host.strip() == obs.host and obs.host)
        assert harness.backend.observe(["missing-1"])["missing-1"].host is None
        harness.backend.cancel(a)

    def test_unknown_attempts_are_reported_unknown_and_cancel_is_a_no_op(
        self, harness: Harness
    ) -> None:
        a = new_id()
        assert harness.backend.observe([a])[a].state is AttemptState.UNKNOWN
        harness.backend.cancel(a)  # no error

    def test_a_healthy_site_says_so(self, harness: Harness) -> None:
        assert harness.backend.health().healthy


class RunningBackendContract(BackendContract):
    """The contract of a backend whose tests really run commands: exit statuses, output,
    environment. An emulator that starts no machine (EC2 on moto) cannot pass these, so
    it takes :class:`BackendContract` alone rather than skipping them."""

    def test_a_command_that_exits_zero_succeeds(self, harness: Harness) -> None:
        a = new_id()
        result = harness.backend.launch(LaunchRequest(a, harness.command(0)))
        assert result.ok and result.backend_id
        obs = wait_for(harness, a, {AttemptState.SUCCEEDED, AttemptState.FAILED})
        assert obs.state is AttemptState.SUCCEEDED
        assert obs.exit_code == 0

    def test_a_failing_command_reports_its_exit_code(self, harness: Harness) -> None:
        a = new_id()
        harness.backend.launch(LaunchRequest(a, harness.command(3)))
        obs = wait_for(harness, a, {AttemptState.SUCCEEDED, AttemptState.FAILED})
        assert obs.state is AttemptState.FAILED
        assert obs.exit_code == 3

    def test_launch_is_idempotent_by_attempt_id(self, harness: Harness) -> None:
        """Launching one attempt id again never runs the command again, not even
        after the first run has finished: the command's output appears once."""
        a = new_id()
        request = LaunchRequest(a, harness.command(0, ["ran-once"]))
        first = harness.backend.launch(request)
        second = harness.backend.launch(request)
        assert first.ok and second.ok
        assert first.backend_id == second.backend_id
        assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
        third = harness.backend.launch(request)
        assert third.ok and third.backend_id == first.backend_id
        assert harness.backend.observe([a])[a].state is AttemptState.SUCCEEDED
        assert harness.backend.logs(a).data.count(b"ran-once") == 1

    def test_cancelling_a_finished_attempt_changes_nothing(self, harness: Harness) -> None:
        a = new_id()
        harness.backend.launch(LaunchRequest(a, harness.command(0)))
        wait_for(harness, a, {AttemptState.SUCCEEDED})
        harness.backend.cancel(a)
        assert harness.backend.observe([a])[a].state is AttemptState.SUCCEEDED

    def test_logs_are_read_from_an_offset(self, harness: Harness) -> None:
        a = new_id()
        harness.backend.launch(LaunchRequest(a, harness.command(0, ["hello", "world"])))
        wait_for(harness, a, {AttemptState.SUCCEEDED})
        chunk = harness.backend.logs(a)
        assert b"hello\nworld\n" in chunk.data
        rest = harness.backend.logs(a, chunk.next_offset)
        assert rest.data == b"" and rest.next_offset == chunk.next_offset

    def test_observe_answers_for_many_attempts_at_once(self, harness: Harness) -> None:
        ids = [new_id() for _ in range(3)]
        for a in ids:
            harness.backend.launch(LaunchRequest(a, harness.command(0)))
        for a in ids:
            wait_for(harness, a, {AttemptState.SUCCEEDED})
        seen = harness.backend.observe([*ids, "missing-1"])
        assert {seen[a].state for a in ids} == {AttemptState.SUCCEEDED}
        assert seen["missing-1"].state is AttemptState.UNKNOWN

    def test_an_attempt_sees_its_own_environment_and_none_of_the_servers(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # what the server's environment may hold: its own token, a provider key
        monkeypatch.setenv("ARCHIPEL_TOKEN", "arch_server-admin-token")
        monkeypatch.setenv("UPSTREAM_API_KEY", "sk-server-secret")
        a = new_id()
        names = ["ARCHIPEL_TOKEN", "UPSTREAM_API_KEY", "WANDB_MODE", "ARCHIPEL_RUN_ID", "PATH"]
        own = {"WANDB_MODE": "offline", "ARCHIPEL_RUN_ID": "r-1"}
        harness.backend.launch(LaunchRequest(a, harness.print_env(names), env=own))
        assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
        seen = dict(
            line.split("=", 1) for line in harness.backend.logs(a).data.decode().splitlines()
        )
        assert seen["ARCHIPEL_TOKEN"] == "<unset>"
        assert seen["UPSTREAM_API_KEY"] == "<unset>"
        assert seen["WANDB_MODE"] == "offline"
        assert seen["ARCHIPEL_RUN_ID"] == "r-1"
        assert seen["PATH"] not in {"", "<unset>"}  # commands are still found


@dataclass
class FakeHarness:
    backend: Backend
    timeout: float = 1.0

    def command(
        self, exit_code: int, lines: Sequence[str] = (), forever: bool = False
    ) -> list[str]:
        return ["sleep"] if forever else ["fake-exit", str(exit_code), *lines]

    def print_env(self, names: Sequence[str]) -> list[str]:
        return ["fake-env", *names]


@pytest.fixture
def fake_harness() -> FakeHarness:
    from archipel.backends import FakeBackend

    return FakeHarness(FakeBackend())


def workdir_archive(folder: Path, files: dict[str, str]) -> Path:
    """A .tar.gz of ``files`` (name -> text), as ``archipel run`` ships a workdir."""
    import io
    import tarfile

    archive = folder / "workdir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def check_the_workdir_is_where_the_command_starts(harness: ShellHarness, folder: Path) -> None:
    """A command that names its files relative to the workdir finds them."""
    a = new_id()
    archive = workdir_archive(folder, {"train.py": "steps\n", "pkg/data.txt": "data\n"})
    request = LaunchRequest(a, ["/bin/sh", "-c", "cat train.py pkg/data.txt"], files=str(archive))
    assert harness.backend.launch(request).ok
    assert wait_for(harness, a, {AttemptState.SUCCEEDED}).state is AttemptState.SUCCEEDED
    assert harness.backend.logs(a).data.decode() == "steps\ndata\n"
