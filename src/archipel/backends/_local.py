"""Run attempts as processes on this machine: the embedded default site.

Each attempt gets a folder ``<state_dir>/attempts/<attempt_id>/`` holding its
output, its process id and, once it ends, its exit code. Processes start in
their own session, so they outlive a control plane that is killed and are
adopted again when it restarts; ``launch`` takes a file lock on the folder and
starts nothing if a process id is already recorded, which makes it idempotent
even across processes. A small shell wrapper writes the exit code atomically
when the command ends; a process that vanished without one was killed from
outside (or the machine restarted) and is reported ``PREEMPTED``.

An operator (or a test) takes the site out of service with :meth:`down`:
``health`` then reports it and ``launch`` refuses new work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from archipel.backends._files import attempt_folder, locked, read_log
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)

_WRAPPER = (
    '"$@"; code=$?; '
    'printf "%s" "$code" > "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" && '
    'mv "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" "$ARCHIPEL_ATTEMPT_DIR/exit_code"'
)
_LAUNCHER = (
    '/bin/sh -c "$0" archipel-attempt "$@" '
    '>>"$ARCHIPEL_ATTEMPT_DIR/output.log" 2>&1 </dev/null & echo $!'
)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against pid reuse); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in {"Z", "X"}:
        return None
    return fields[19]


def _group(pid_file: Path) -> int:
    """The process group of an attempt (the launcher's pid, which leads its session)."""
    fields = pid_file.read_text().split()
    return int(fields[2] if len(fields) > 2 else fields[0])


class LocalBackend:
    """Processes on this machine, one folder per attempt under ``state_dir``."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self._name = name
        self.state_dir = Path(state_dir)
        (self.state_dir / "attempts").mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self._name

    def _dir(self, attempt_id: str) -> Path:
        return attempt_folder(self.state_dir / "attempts", attempt_id)

    def launch(self, request: LaunchRequest) -> LaunchResult:
        folder = self._dir(request.attempt_id)
        health = self.health()
        with locked(folder):
            pid_file = folder / "pid"
            if pid_file.exists():
                recorded = pid_file.read_text().split()[0]
                return LaunchResult(request.attempt_id, True, f"{self._name}:{recorded}")
            if not health.healthy:
                return LaunchResult(request.attempt_id, False, error=health.reason, retryable=True)
            env = {**os.environ, **request.env, "ARCHIPEL_ATTEMPT_DIR": str(folder)}
            try:
                # A short-lived launcher starts the wrapper in the background, prints
                # its pid and exits: the attempt is nobody's child (no zombie, no
                # tie to this process), in a session and process group of its own.
                launcher = subprocess.Popen(
                    ["/bin/sh", "-c", _LAUNCHER, _WRAPPER, *request.command],
                    cwd=request.workdir or folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                out, _ = launcher.communicate(timeout=10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return LaunchResult(request.attempt_id, False, error=f"cannot start: {exc}")
            pid = int(out.decode().strip())
            tmp = folder / "pid.tmp"
            tmp.write_text(f"{pid} {_start_time(pid) or ''} {launcher.pid}\n")
            tmp.replace(pid_file)
            return LaunchResult(request.attempt_id, True, f"{self._name}:{pid}")

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        return {a: self._observe(a) for a in attempt_ids}

    def _observe(self, attempt_id: str) -> Observation:
        folder = self._dir(attempt_id)
        pid_file = folder / "pid"
        if not pid_file.exists():
            return Observation(attempt_id, AttemptState.UNKNOWN)
        pid_text, started, _ = ([*pid_file.read_text().split(), "", ""])[:3]
        backend_id = f"{self._name}:{pid_text}"
        cancelled = (folder / "cancelled").exists()
        code_file = folder / "exit_code"
        if code_file.exists():
            code = int(code_file.read_text() or "1")
            if cancelled:
                return Observation(
                    attempt_id, AttemptState.CANCELLED, backend_id, code, "cancelled"
                )
            state = AttemptState.SUCCEEDED if code == 0 else AttemptState.FAILED
            reason = None if code == 0 else f"exited with status {code}"
            return Observation(attempt_id, state, backend_id, code, reason)
        now = _start_time(int(pid_text))
        if now is not None and (not started or now == started):
            return Observation(attempt_id, AttemptState.RUNNING, backend_id)
        if cancelled:
            return Observation(attempt_id, AttemptState.CANCELLED, backend_id, None, "cancelled")
        return Observation(
            attempt_id,
            AttemptState.PREEMPTED,
            backend_id,
            None,
            "the process vanished without an exit status (killed, or the machine restarted)",
        )

    def cancel(self, attempt_id: str) -> None:
        folder = self._dir(attempt_id)
        pid_file = folder / "pid"
        if not pid_file.exists() or (folder / "exit_code").exists():
            return
        (folder / "cancelled").touch()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_group(pid_file), signal.SIGTERM)

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        return read_log(self._dir(attempt_id) / "output.log", offset)

    def health(self) -> SiteHealth:
        marker = self.state_dir / "DOWN"
        if marker.exists():
            return SiteHealth(False, marker.read_text().strip() or f"site {self._name} is down")
        return SiteHealth(True)

    def down(self, reason: str) -> None:
        """Take the site out of service (new launches are refused)."""
        (self.state_dir / "DOWN").write_text(reason + "\n")

    def up(self) -> None:
        """Put the site back in service."""
        (self.state_dir / "DOWN").unlink(missing_ok=True)

    def kill_all(self) -> None:
        """Kill every running attempt of this site (a crash of the site, for failure tests)."""
        for folder in (self.state_dir / "attempts").iterdir():
            pid_file = folder / "pid"
            if pid_file.exists() and not (folder / "exit_code").exists():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(_group(pid_file), signal.SIGKILL)
