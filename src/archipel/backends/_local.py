"""Run attempts as processes on this machine: the embedded default site.

Each attempt gets a folder ``<state_dir>/attempts/<attempt_id>/``. The server
owns it and what it keeps there: the lock, the process id, the ``cancelled``
marker, the output (``output.log``) and the exit status (``status``), all
private to the server (files 0600, folders 0700). The attempt itself owns only
``work/`` inside it: its working directory by default and its
``ARCHIPEL_ATTEMPT_DIR``. It writes its output and exit status through file
descriptors the server opened for it, so it never needs (nor gets) the right
to open those files, nor another attempt's.

Processes start in their own session, so they outlive a control plane that is
killed and are adopted again when it restarts; ``launch`` takes a file lock on
the folder and starts nothing if a process id is already recorded, which makes
it idempotent even across processes. A small shell wrapper writes the exit code
followed by a newline when the command ends; a process that vanished without
one was killed from outside (or the machine restarted) and is reported
``PREEMPTED``.

**run_as.** A site may name an unprivileged user: its attempts then run as that
user (its primary group, no supplementary groups, umask 077), and the server,
which must run as root to switch users, keeps observing, reading and killing
them. ``work/`` and the folders in ``LaunchRequest.writable`` (the checkpoint)
are handed to that user; the folders above them are made traversable
(0711: others may pass through to a name they know but not list it). The
attempt starts with a clean environment (see :mod:`archipel.backends._env`).

An operator (or a test) takes the site out of service with :meth:`down`:
``health`` then reports it and ``launch`` refuses new work.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from archipel.backends._env import attempt_environment
from archipel.backends._files import attempt_folder, locked, read_log, unpack
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)
from archipel.core import InputError

# The wrapper runs the command with its standard input on /dev/null, then writes its
# exit code and a newline to its own standard input: the ``status`` file, opened for
# writing by the server. Its output goes to ``output.log`` the same way.
_WRAPPER = '"$@" </dev/null; code=$?; printf "%s\\n" "$code" >&0'
# A short-lived launcher starts the wrapper in the background (keeping the status
# descriptor as its standard input: a background job would get /dev/null), prints
# its pid on standard error and exits.
_LAUNCHER = 'exec 3<&0; /bin/sh -c "$0" archipel-attempt "$@" 2>&1 <&3 3<&- & echo $! >&2'
_STATUS_LIMIT = 32  # bytes of ``status`` read: an exit code and a newline


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


def _run_user(site: str, name: str) -> pwd.struct_passwd:
    """The unprivileged account ``run_as`` names, once this process can switch to it."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise InputError(
            f"site {site}: run_as: there is no user {name!r} on this machine; create it "
            f"(useradd --system --no-create-home {name}) or remove run_as"
        ) from None
    if account.pw_uid == 0:
        raise InputError(f"site {site}: run_as: {name!r} is root; name an unprivileged user")
    if os.geteuid() != 0 and os.geteuid() != account.pw_uid:
        raise InputError(
            f"site {site}: run_as: {name!r} needs the server to run as root (it runs as "
            f"uid {os.geteuid()}, which cannot switch users); start it as root or remove run_as"
        )
    return account


def _open_private(path: Path, flags: int) -> int:
    """A descriptor on ``path`` (created 0600, never through a symbolic link)."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _hand_over(top: Path, account: pwd.struct_passwd) -> None:
    """Give ``top`` and what it holds to ``account``, following no symbolic link.

    A file with several hard links is skipped: it may be someone else's file linked
    in by an earlier attempt.
    """
    top.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                continue
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    os.chown(top, account.pw_uid, account.pw_gid, follow_symlinks=False)
    top.chmod(0o700)


class LocalBackend:
    """Processes on this machine, one folder per attempt under ``state_dir``.

    ``run_as`` names the unprivileged user the attempts run as (default: the
    server's own user); it must exist, and the server must run as root to use it.
    """

    def __init__(self, name: str, state_dir: Path, run_as: str | None = None) -> None:
        self._name = name
        self.state_dir = Path(state_dir)
        self.run_as = _run_user(name, run_as) if run_as else None
        # the run user passes through the server's folders to its own, listing none
        self._folder_mode = 0o711 if self.run_as else 0o700
        (self.state_dir / "attempts").mkdir(parents=True, exist_ok=True)
        for folder in (self.state_dir, self.state_dir / "attempts"):
            folder.chmod(self._folder_mode)

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
            try:
                pid, launcher = self._start(request, folder)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                return LaunchResult(request.attempt_id, False, error=f"cannot start: {exc}")
            tmp = folder / "pid.tmp"
            tmp.write_text(f"{pid} {_start_time(pid) or ''} {launcher}\n")
            tmp.replace(pid_file)
            return LaunchResult(request.attempt_id, True, f"{self._name}:{pid}")

    def _start(self, request: LaunchRequest, folder: Path) -> tuple[int, int]:
        """Start the attempt: its pid and its process group (the launcher's pid)."""
        folder.chmod(self._folder_mode)
        work = folder / "work"
        work.mkdir(exist_ok=True)
        work.chmod(0o700)
        if request.files is not None:  # the submitter's workdir, owned as work/ is below
            unpack(Path(request.files), work)
        account = self.run_as
        if account is not None:
            for path in (work, *(Path(p) for p in request.writable)):
                _hand_over(path, account)
        env = attempt_environment(
            {**request.env, "ARCHIPEL_ATTEMPT_DIR": str(work)}, account=account
        )
        log = _open_private(folder / "output.log", os.O_WRONLY | os.O_APPEND)
        status = _open_private(folder / "status", os.O_WRONLY | os.O_TRUNC)
        try:
            # The attempt is nobody's child (no zombie, no tie to this process), in a
            # session and process group of its own.
            launcher = subprocess.Popen(
                ["/bin/sh", "-c", _LAUNCHER, _WRAPPER, *request.command],
                cwd=request.workdir or work,
                env=env,
                stdin=status,
                stdout=log,
                stderr=subprocess.PIPE,
                start_new_session=True,
                umask=0o077,
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )
        finally:
            os.close(log)
            os.close(status)
        _, err = launcher.communicate(timeout=10)
        return int(err.decode().strip()), int(launcher.pid)

    def _exit_code(self, folder: Path) -> int | str | None:
        """The exit code the wrapper wrote; a message if it is not one; None if not yet."""
        try:
            with (folder / "status").open("rb") as fh:
                text = fh.read(_STATUS_LIMIT).decode("ascii", "replace")
        except FileNotFoundError:
            try:  # an attempt started by an older version wrote ``exit_code``
                text = (folder / "exit_code").read_text()[:_STATUS_LIMIT] + "\n"
            except FileNotFoundError:
                return None
        if not text.endswith("\n"):
            return None
        try:
            return int(text.strip() or "1")
        except ValueError:
            return "the attempt left an unreadable exit status"

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
        code = self._exit_code(folder)
        if isinstance(code, str):
            return Observation(attempt_id, AttemptState.FAILED, backend_id, None, code)
        if code is not None:
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
        if not pid_file.exists() or self._exit_code(folder) is not None:
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
            if pid_file.exists() and self._exit_code(folder) is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(_group(pid_file), signal.SIGKILL)
