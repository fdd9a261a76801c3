"""Several gateway processes on one listen address: a supervisor and its workers.

``archipel gateway --workers N`` loads the configuration, the policy and the route
table and reserves the listen address (bound, not listening), then forks N workers,
each listening on a socket of its own on the address (``SO_REUSEPORT``, made by the
worker's ``run``): the kernel spreads new connections over the workers by their
source address and port, so a burst of connections is shared (on one shared socket,
the first worker to wake accepted a whole burst alone). The supervisor does no
request work. It:

- restarts a worker that dies (at most ``max_restarts`` within ``window`` seconds;
  past that it stops the others and exits 1, so a crash loop is not hidden);
- forwards SIGHUP to every worker, each of which reloads its configuration;
- on SIGTERM or SIGINT forwards SIGTERM, waits for the workers to drain (their
  ``shutdown_timeout`` and a grace), then kills what is left.

What each worker keeps for itself, and what that means, is in docs/gateway.md:
circuit breakers and health checks are per worker; in-process rate limits are
split (each worker enforces 1/N of each limit); `/metrics` gathers every worker's
figures, each sample labelled with its ``worker``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger("archipel.gateway")


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Which worker this process is: its ``index`` among ``count``, the folder of the
    private sockets on which the workers answer each other's metrics requests, and
    whether it replaces a worker that died (it should then read the configuration
    files as they are now: the others may have reloaded since the supervisor read them)."""

    index: int
    count: int
    peers: Path
    replacement: bool = False

    def socket(self, index: int) -> Path:
        return self.peers / f"worker-{index}.sock"


RunWorker = Callable[[WorkerSlot], None]


@dataclass
class Supervisor:
    """Forks ``count`` workers running ``run_worker`` and keeps them running (see module)."""

    count: int
    run_worker: RunWorker
    peers: Path
    drain_seconds: float = 30.0
    max_restarts: int = 5
    window: float = 30.0
    clock: Callable[[], float] = time.monotonic
    pids: dict[int, int] = field(default_factory=dict)  # pid -> worker index
    deaths: list[float] = field(default_factory=list)
    _stop: bool = False
    _hup: bool = False

    def run(self) -> int:
        """Run until told to stop; the exit status: 0 after a stop, 1 after a crash loop."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            for index in range(self.count):
                self._spawn(index)
            status = self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._hup = True

    def _spawn(self, index: int, replacement: bool = False) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: default signal handling (aiohttp installs its own)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            # a group of its own: a signal to the supervisor's group (Ctrl-C, `kill -- -PGID`)
            # reaches the supervisor alone, which forwards it once; a second SIGTERM in the
            # middle of a graceful stop would break the worker's drain
            os.setpgid(0, 0)
            _die_with(supervisor)
            status = 0
            try:
                self.run_worker(WorkerSlot(index, self.count, self.peers, replacement))
            except BaseException:  # the supervisor logs the exit; the traceback is here
                log.exception("gateway worker %d failed", index)
                status = 1
            os._exit(status)
        self.pids[pid] = index
        log.info("gateway worker %d started (pid %d)", index, pid)

    def _watch(self) -> int:
        while not self._stop:
            if self._hup:
                self._hup = False
                self._signal_all(signal.SIGHUP)
            pid, status = _reap()
            if pid <= 0:
                time.sleep(0.05)
                continue
            index = self.pids.pop(pid, None)
            if index is None or self._stop:
                continue
            log.warning("gateway worker %d (pid %d) ended: %s", index, pid, _exit_text(status))
            if self._crash_loop():
                log.error(
                    "gateway workers ended %d times within %.0f s: stopping",
                    len(self.deaths), self.window,
                )  # fmt: skip
                return 1
            self._spawn(index, replacement=True)
        return 0

    def _crash_loop(self) -> bool:
        now = self.clock()
        self.deaths = [t for t in self.deaths if now - t < self.window] + [now]
        return len(self.deaths) > self.max_restarts

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                self.pids.pop(pid, None)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = self.clock() + self.drain_seconds + 5.0
        while self.pids and self.clock() < deadline:
            pid, _ = _reap()
            if pid == 0:
                time.sleep(0.05)
            elif pid < 0:  # every child is gone
                self.pids.clear()
            else:
                self.pids.pop(pid, None)
        for pid in list(self.pids):  # did not drain in time
            log.warning("gateway worker pid %d did not stop in time: killed", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.pids.pop(pid, None)


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies (Linux), so that a
    supervisor killed with SIGKILL leaves no worker behind; elsewhere, nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _reap() -> tuple[int, int]:
    """A child that ended, if any: pid 0 when none has yet, -1 when there is no child."""
    try:
        return os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return -1, 0


def serve_workers(count: int, run_worker: RunWorker, drain_seconds: float) -> int:
    """Run ``count`` workers under a :class:`Supervisor` until SIGTERM or SIGINT; the exit
    status. The workers' private sockets live in a fresh folder, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="archipel-gateway-") as peers:
        return Supervisor(count, run_worker, Path(peers), drain_seconds).run()


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
