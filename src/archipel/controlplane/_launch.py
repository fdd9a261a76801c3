"""Launching a run's attempt on its site: ports, environment, the backend call, its outcome.

The attempt is recorded (``launching``, with its number and, for a service,
its port) *before* the backend is called, by :meth:`Reconciler._place`; the
launch itself is idempotent by attempt id, so a crash in between is healed by
launching again.

An inference service (a workload with ``serve``) is told where to listen:
``ARCHIPEL_PORT`` and ``PORT`` carry ``serve.port``, or else a port picked per
attempt by :func:`free_port` and recorded with the attempt before the launch,
so a relaunch after a crash gets the same one. It also gets
``ARCHIPEL_SERVICE_KEY``, the credential issued to that service alone at
submission. :func:`free_port` only knows this machine: on a remote Slurm node
a port free here is very likely, not certainly, free there.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from archipel.backends import AttemptState, LaunchRequest, LaunchResult
from archipel.controlplane._records import AttemptUpdate, RunView
from archipel.controlplane._round import Round, error_text
from archipel.controlplane._sites import Site
from archipel.controlplane._store import Store
from archipel.controlplane._workdirs import Workdirs
from archipel.core import RunSpec, RunState, parse_accelerator_spec

log = logging.getLogger("archipel.reconciler")

#: ports remembered as handed out lately (a service not listening yet leaves its port "free")
_RECENT_PORTS = 1024


def free_port() -> int:
    """A TCP port free on this machine now: bind port 0 on 127.0.0.1, read it, close.

    Free *now*: another process may take it before the service binds it (the
    attempt then fails and is recovered), and a remote node is not this machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Launcher:
    """Starts recorded attempts on their sites and records what the backend answered."""

    def __init__(
        self,
        store: Store,
        sites: Mapping[str, Site],
        checkpoint_root: Path,
        workdirs: Workdirs,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.store = store
        self.sites = sites
        self.checkpoint_root = checkpoint_root
        self.workdirs = workdirs
        self.pick_port = pick_port
        self._given_ports: deque[int] = deque(maxlen=_RECENT_PORTS)

    def new_port(self) -> int:
        """A free port not handed out lately (a few tries, then whatever is free)."""
        port = self.pick_port()
        for _ in range(8):
            if port not in self._given_ports:
                break
            port = self.pick_port()
        self._given_ports.append(port)
        return port

    def launch(self, rnd: Round, run: RunView) -> None:
        """Launch the run's recorded attempt; a failure moves the run (recovering or failed)."""
        assert run.attempt_id is not None
        assert run.site is not None
        site = self.sites.get(run.site)
        spec = run.workload.run
        if site is None or spec is None:
            why = "the workload has no run.command" if spec is None else "site vanished"
            rnd.move(run, RunState.FAILED, why)
            return
        try:
            result = site.backend.launch(self._request(run, site, spec))
        except OSError as exc:  # the site is unreachable, not the run wrong: try elsewhere
            log.warning("run %s: launching on %s raised %s", run.id, site.name, exc)
            result = LaunchResult(run.attempt_id, False, error=error_text(exc), retryable=True)
        self._record(rnd, run, site, result)

    def _record(self, rnd: Round, run: RunView, site: Site, result: LaunchResult) -> None:
        """Record the backend's answer: accepted (not seen running yet), or failed."""
        assert run.attempt_id is not None
        if result.ok:
            rnd.report.launched += 1
            update = AttemptUpdate(run.attempt_id, AttemptState.PENDING, result.backend_id)
            self.store.update_attempt(update)
            return
        self.store.update_attempt(
            AttemptUpdate(run.attempt_id, AttemptState.FAILED, reason=result.error)
        )
        detail = f"launch on {site.name} failed: {result.error}"
        if result.retryable:
            rnd.move(run, RunState.RECOVERING, detail, block=site.name)
        else:
            rnd.move(run, RunState.FAILED, detail)

    def _request(self, run: RunView, site: Site, spec: RunSpec) -> LaunchRequest:
        """What the backend is asked to run: the command, its environment and files."""
        assert run.attempt_id is not None
        checkpoint = self.checkpoint_root / run.id
        checkpoint.mkdir(parents=True, exist_ok=True)
        # what the chosen site offers (the alternative of the workload that matched it);
        # "cpu" is a slot, not a device a backend allocates
        offered = site.spec.accelerators
        gpus = None if parse_accelerator_spec(offered).is_cpu else offered
        files = (
            None
            if spec.workdir_sha256 is None
            else str(self.workdirs.path(run.tenant, spec.workdir_sha256))
        )
        return LaunchRequest(
            run.attempt_id,
            spec.command,
            self._env(run, site, spec, checkpoint),
            None,
            gpus,
            run.workload.resources.nodes,
            writable=(str(checkpoint),),
            files=files,
        )

    def _env(self, run: RunView, site: Site, spec: RunSpec, checkpoint: Path) -> dict[str, str]:
        assert run.attempt_id is not None
        return {
            **spec.env,
            "ARCHIPEL_RUN_ID": run.id,
            "ARCHIPEL_ATTEMPT_ID": run.attempt_id,
            "ARCHIPEL_CHECKPOINT_DIR": str(checkpoint),
            "ARCHIPEL_RESTART_COUNT": str(run.restarts),
            "ARCHIPEL_SITE": site.name,
            # the control plane's own Python: a command that needs Archipel (the example
            # service runs its fake model server) finds it even outside a virtualenv
            "ARCHIPEL_PYTHON": sys.executable,
            **(self._port_env(run.attempt_id) if run.workload.serve is not None else {}),
            # the service's own credential: it answers only callers that present it
            **({"ARCHIPEL_SERVICE_KEY": run.service_key} if run.service_key is not None else {}),
        }

    def _port_env(self, attempt_id: str) -> dict[str, str]:
        """``ARCHIPEL_PORT`` and ``PORT`` for a service: the port recorded with its attempt."""
        attempt = self.store.attempt(attempt_id)
        if attempt is None or attempt.port is None:
            return {}
        return {"ARCHIPEL_PORT": str(attempt.port), "PORT": str(attempt.port)}
