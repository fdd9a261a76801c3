"""The server's simulation worker: scenarios uploaded in the console, run one at a time.

An admin uploads a scenario and its trace in the console (``/ui/simulations``);
:func:`check` reads them at once (a bad one is refused with the command's own
message, before anything is queued), the store queues them
(:class:`archipel.controlplane.Simulations`), and :class:`SimulationWorker`
runs the oldest queued one as ``archipel simulate SCENARIO.yaml --json`` in a
process of its own, with a time limit, and records the document it prints.

Why a process: a simulation is seconds to minutes of CPU. In a thread of the
server it would hold the interpreter's lock against the API and the
reconciler; in a process it does not, it can be stopped at its time limit,
and what it prints is the command's output by construction.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from archipel.core import InputError

if TYPE_CHECKING:
    from archipel.controlplane import SimulationInput, Simulations

log = logging.getLogger("archipel.simulations")

#: the longest one simulation may run before it is stopped (the example takes ~20 s)
TIME_LIMIT = timedelta(minutes=15)
#: queued or running simulations one tenant may have at once
MAX_UNFINISHED = 3
#: how often the worker looks for a queued simulation when nobody woke it
POLL_SECONDS = 5.0


def _trace_file(name: str) -> str:
    """The uploaded trace's name, made a safe file name in the worker's folder."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")
    return base[:100] or "trace.csv"


def _scenario_file(
    folder: Path, scenario: str, trace_name: str, trace: str
) -> tuple[Path, dict[str, Any]]:
    """The scenario and its trace written into ``folder``, the scenario's ``trace.openb``
    pointed at the uploaded trace (nothing else of the server's disk is read)."""
    from archipel.cli._config import read_yaml_documents

    raw = folder / "upload.yaml"
    raw.write_text(scenario, encoding="utf-8")
    documents = read_yaml_documents(raw)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InputError("the scenario: give one YAML mapping (name, trace, sites, strategies)")
    doc = documents[0]
    if isinstance(doc.get("trace"), dict):
        doc = {**doc, "trace": {**doc["trace"], "openb": _trace_file(trace_name)}}
    (folder / _trace_file(trace_name)).write_text(trace, encoding="utf-8")
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, doc


def check(scenario: str, trace_name: str, trace: str) -> str:
    """The scenario's name if it and its trace parse as ``archipel simulate`` reads them;
    otherwise :class:`InputError` with the command's own message."""
    from archipel.sim._openb import load_openb
    from archipel.sim._portfolio import parse_scenario

    with tempfile.TemporaryDirectory(prefix="archipel-sim-") as tmp:
        try:
            _, doc = _scenario_file(Path(tmp), scenario, trace_name, trace)
            parsed = parse_scenario(doc, "the scenario", Path(tmp), load_openb)
        except InputError as exc:
            raise InputError(_unfoldered(str(exc))) from None
        return parsed.spec.name


class SimulationWorker:
    """One thread that runs the queued simulations, one at a time, each in its own process."""

    def __init__(
        self,
        simulations: Simulations,
        policy: Path | None,
        *,
        time_limit: timedelta = TIME_LIMIT,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.simulations = simulations
        # the command runs in a folder of its own: a relative --policy is the server's
        self.policy = None if policy is None else policy.resolve()
        self.time_limit = time_limit
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._loop, name="simulations", daemon=True)

    def start(self) -> SimulationWorker:
        self._thread.start()
        return self

    @property
    def busy(self) -> bool:
        """Whether a simulation's process is running now."""
        return self._process is not None

    def wake(self) -> None:
        """Look for a queued simulation now (the console calls it after queuing one)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; a simulation under way is stopped and recorded as failed."""
        self._stop.set()
        self._wake.set()
        process = self._process
        if process is not None:
            process.kill()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a store briefly unreachable must not end the worker
                log.exception("the simulation worker raised; trying again later")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def run_once(self) -> bool:
        """Run the oldest queued simulation, if any; whether there was one."""
        stale = self.simulations.abandon(
            self.time_limit * 2, "its server stopped while it ran; upload it again"
        )
        if stale:
            log.warning("%d simulations were left running by a stopped server: failed", stale)
        found = self.simulations.claim()
        if found is None:
            return False
        try:
            result = self._run(found)
        except InputError as exc:
            self.simulations.fail(found.id, str(exc))
        except Exception as exc:  # the simulation's failure is its own, never the worker's
            log.exception("simulation %s raised", found.id)
            self.simulations.fail(found.id, f"the simulation raised: {exc}")
        else:
            self.simulations.succeed(found.id, result)
        return True

    def _run(self, found: SimulationInput) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="archipel-sim-") as tmp:
            path, _ = _scenario_file(Path(tmp), found.scenario, found.trace_name, found.trace)
            command = [sys.executable, "-c", "from archipel.cli import main; main()"]
            command += ["simulate", "scenario", str(path), "--json"]
            if self.policy is not None:
                command += ["--policy", str(self.policy)]
            self._process = subprocess.Popen(
                command,
                cwd=tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # its own session: a Ctrl-C meant for the server does not reach it; the
                # server's stop() ends it and records it as failed
                start_new_session=True,
            )
            try:
                out, err = self._process.communicate(timeout=self.time_limit.total_seconds())
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()
                minutes = self.time_limit.total_seconds() / 60
                raise InputError(
                    f"it ran longer than {minutes:g} minutes, the server's limit: "
                    "simulate fewer days or fewer strategies, or run `archipel simulate` "
                    "on your machine"
                ) from None
            finally:
                code, self._process = self._process.returncode, None
        if self._stop.is_set():
            raise InputError("its server stopped while it ran; upload it again")
        if code not in (0, 1):  # 1: done, and a compliance violation was found
            raise InputError(_last_words(err) or f"`archipel simulate` exited {code}")
        document: dict[str, Any] = json.loads(out)
        return document


def _last_words(err: str) -> str:
    """What the command said on its way out, without the path of the worker's folder."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return _unfoldered(" ".join(lines[-5:]))[:2000]


def _unfoldered(text: str) -> str:
    """``text`` without the worker's temporary folder in its paths (``/tmp/archipel-sim-x/``)."""
    return re.sub(r"/\S*?archipel-sim-[^/\s]*/", "", text)
