"""Run attempts as batch jobs on a Slurm cluster, through its command-line tools.

One :class:`SlurmBackend` is one site: a partition of a cluster. It talks to Slurm
only through ``sbatch``, ``squeue``, ``sacct`` (when the cluster keeps accounting),
``scancel``, ``sinfo`` and ``scontrol``; every call has a timeout and every failure
becomes data (a refused :class:`LaunchResult`, an ``UNKNOWN`` observation with a
reason, an unhealthy :class:`SiteHealth`).

An attempt is the job named ``archipel-<attempt_id>`` in the partition. ``launch``
holds a file lock on ``<state_dir>/<attempt_id>/``, then looks for the job (the job
id recorded there, then the name in the controller) and submits only when there is
none, so launching twice, or again from a restarted control plane, starts the work
once. Output goes to ``<state_dir>/<attempt_id>/output.log``, so ``state_dir`` must
be on storage the compute nodes share (as Slurm's own ``--output`` requires). The
batch script also writes the command's exit status to ``exit_code`` there, which
answers for jobs the controller has forgotten (after ``MinJobAge``) on clusters
without accounting.

State mapping (the controller's job state, from ``squeue -t all``, else ``sacct``):

========================================  ==========================================
Slurm                                     Archipel
========================================  ==========================================
PENDING, CONFIGURING, REQUEUED, ...       PENDING
RUNNING, COMPLETING, SUSPENDED, ...       RUNNING
COMPLETED                                 SUCCEEDED (exit code 0)
FAILED, OUT_OF_MEMORY, TIMEOUT, DEADLINE  FAILED (exit code, or the signal in reason)
CANCELLED                                 CANCELLED
PREEMPTED, NODE_FAIL, BOOT_FAIL           PREEMPTED
========================================  ==========================================

An observation names the job's first node as its ``host`` (``NodeList``, a
compressed list such as ``gpu[03-05,09]``, reduced to ``gpu03`` by
:func:`_first_host` without asking ``scontrol``): that is where a service the job
runs listens.

**Environment and account.** Jobs are submitted with ``--export=NONE``: the job
does not inherit the server's environment (its token, its keys). Slurm starts it
with the submitting account's login environment on the node (``PATH``, ``HOME``
and the rest, as ``--get-user-env`` loads them) plus ``SLURM_*``, and the batch
script exports the attempt's own variables over it. The job runs as the account
that runs ``sbatch``: the server's user, charged to its default association
(``--account`` in ``sbatch_args`` picks another of its associations).

Jobs are submitted with ``--no-requeue``: when Slurm loses a node the attempt ends
``PREEMPTED`` and the control plane places it again (elsewhere if need be), rather
than Slurm silently restarting it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from archipel.backends._files import attempt_folder, locked, read_log, unpack
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_PREFIX = "archipel-"
_SQUEUE_FORMAT = "JobID:|,Name:|,State:|,exit_code:|,NodeList:|,Reason:|"
_NAMES_PER_QUERY = 200
_FIRST_NAME = re.compile(r"(?:[^,\[]|\[[^\]]*\])+")  # a node list's first (compressed) name
_BRACKETS = re.compile(r"\[([^\]]*)\]")

_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
}
_FAILED = {"FAILED", "OUT_OF_MEMORY", "TIMEOUT", "DEADLINE", "SPECIAL_EXIT"}
_PREEMPTED = {"PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "REVOKED"}
_CANCELLED = {"CANCELLED"}

# Node states (sinfo %T, without the flag suffixes) in which a node can run new work.
_USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing", "planned", "reserved"}


@dataclass(frozen=True, slots=True)
class _Run:
    """The outcome of one CLI call: ``error`` is set when it did not succeed."""

    out: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    """One job as Slurm reports it."""

    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    reason: str | None
    host: str | None = None  # the first node allocated to it


def _first_host(nodelist: str) -> str | None:
    """The first node of a Slurm node list: ``node[01-03,7],gpu1`` -> ``node01``.

    ``None`` when the job has no node (pending: an empty list, ``(null)`` or
    ``None assigned``). Each bracket group is replaced by its first item, which
    keeps zero padding, as ``scontrol show hostnames`` would print it first.
    """
    text = nodelist.strip()
    if text in {"", "(null)", "None", "None assigned"}:
        return None
    name = _FIRST_NAME.match(text)  # up to the first comma outside brackets
    if name is None:
        return None
    return _BRACKETS.sub(lambda m: m.group(1).split(",")[0].split("-")[0], name.group(0))


def _job_name(attempt_id: str) -> str:
    return _JOB_PREFIX + attempt_id


def _parse_wait_status(text: str) -> tuple[int | None, int | None]:
    """squeue's exit_code is a raw wait status; sacct's ExitCode is ``code:signal``."""
    text = text.strip()
    if ":" in text:
        code, _, sig = text.partition(":")
        if code.isdigit() and sig.isdigit():
            return int(code), int(sig) or None
        return None, None
    if not text.isdigit():
        return None, None
    status = int(text)
    if status & 0x7F:
        return None, status & 0x7F
    return (status >> 8) & 0xFF, None


class SlurmBackend:
    """A Slurm partition as a site; one folder per attempt under ``state_dir``.

    ``slurm_conf`` points the CLI tools at a cluster's config (``SLURM_CONF``);
    ``sbatch_args`` are added to every submission (``--account``, ``--time``, ...);
    ``command_timeout`` bounds every CLI call in seconds.
    """

    def __init__(
        self,
        name: str,
        partition: str,
        state_dir: Path,
        *,
        slurm_conf: Path | None = None,
        sbatch_args: Sequence[str] = (),
        command_timeout: float = 15.0,
    ) -> None:
        self._name = name
        self.partition = partition
        self.state_dir = Path(state_dir)
        self.slurm_conf = slurm_conf
        self.sbatch_args = tuple(sbatch_args)
        self.command_timeout = command_timeout
        self._sacct_works: bool | None = None
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self._name

    # --- plumbing ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.slurm_conf is not None:
            env["SLURM_CONF"] = str(self.slurm_conf)
        return env

    def _run(self, args: Sequence[str], stdin: str | None = None) -> _Run:
        try:
            done = subprocess.run(
                list(args),
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=self.command_timeout,
                check=False,
            )
        except FileNotFoundError:
            return _Run("", f"{args[0]} not found: is the Slurm client installed?")
        except subprocess.TimeoutExpired:
            return _Run("", f"{args[0]} did not answer within {self.command_timeout:g}s")
        except OSError as exc:
            return _Run("", f"cannot run {args[0]}: {exc}")
        if done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip()).splitlines()
            detail = message[-1] if message else f"exit status {done.returncode}"
            return _Run(done.stdout, f"{args[0]} failed: {detail}")
        return _Run(done.stdout)

    def _dir(self, attempt_id: str) -> Path:
        return attempt_folder(self.state_dir, attempt_id)

    def _recorded_job(self, folder: Path) -> str | None:
        try:
            return (folder / "job_id").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _record_job(self, folder: Path, job_id: str) -> None:
        tmp = folder / "job_id.tmp"
        tmp.write_text(job_id + "\n")
        tmp.replace(folder / "job_id")

    # --- queries -----------------------------------------------------------------------

    def _squeue(self, attempt_ids: Sequence[str]) -> dict[str, _Job] | str:
        """The controller's jobs for these attempts (finished ones too), or an error."""
        found: dict[str, _Job] = {}
        for start in range(0, len(attempt_ids), _NAMES_PER_QUERY):
            names = ",".join(_job_name(a) for a in attempt_ids[start : start + _NAMES_PER_QUERY])
            run = self._run(
                [
                    "squeue",
                    "--noheader",
                    "--states=all",
                    f"--partition={self.partition}",
                    f"--name={names}",
                    f"--Format={_SQUEUE_FORMAT}",
                ]
            )
            if run.error:
                return run.error
            for line in run.out.splitlines():
                parts = line.split("|", 5)
                if len(parts) < 6 or not parts[1].startswith(_JOB_PREFIX):
                    continue
                job_id, name, state, status, nodes, reason = parts
                code, sig = _parse_wait_status(status)
                why = reason.strip().rstrip("|").strip()
                job = _Job(
                    job_id.strip(),
                    state.strip().split()[0] if state.strip() else "",
                    code,
                    sig,
                    None if why in {"", "None", "(null)"} else why,
                    _first_host(nodes),
                )
                attempt_id = name[len(_JOB_PREFIX) :]
                # Several jobs of one name (should not happen): the oldest is the attempt.
                current = found.get(attempt_id)
                if current is None or _job_number(job.job_id) < _job_number(current.job_id):
                    found[attempt_id] = job
        return found

    def _sacct(self, attempt_ids: Sequence[str]) -> dict[str, _Job]:
        """Jobs the controller forgot, from accounting (when the cluster keeps it)."""
        if self._sacct_works is False or not attempt_ids:
            return {}
        found: dict[str, _Job] = {}
        for start in range(0, len(attempt_ids), _NAMES_PER_QUERY):
            names = ",".join(_job_name(a) for a in attempt_ids[start : start + _NAMES_PER_QUERY])
            run = self._run(
                [
                    "sacct",
                    "--noheader",
                    "--parsable2",
                    "--allocations",
                    f"--partition={self.partition}",
                    f"--name={names}",
                    "--starttime=now-30days",
                    "--format=JobID,JobName,State,ExitCode,NodeList",
                ]
            )
            if run.error:
                if "accounting storage is disabled" in run.error.lower():
                    self._sacct_works = False
                return found
            self._sacct_works = True
            for line in run.out.splitlines():
                parts = line.split("|")
                if len(parts) < 5 or not parts[1].startswith(_JOB_PREFIX):
                    continue
                code, sig = _parse_wait_status(parts[3])
                state = parts[2].split()[0] if parts[2].strip() else ""
                found.setdefault(
                    parts[1][len(_JOB_PREFIX) :],
                    _Job(parts[0], state, code, sig, None, _first_host(parts[4])),
                )
        return found

    def _find(self, attempt_id: str, folder: Path) -> str | _Run | None:
        """The job id of an attempt: recorded, else by name in the controller; a _Run on error."""
        recorded = self._recorded_job(folder)
        if recorded:
            return recorded
        jobs = self._squeue([attempt_id])
        if isinstance(jobs, str):
            return _Run("", jobs)
        if attempt_id in jobs:
            return jobs[attempt_id].job_id
        old = self._sacct([attempt_id])
        return old[attempt_id].job_id if attempt_id in old else None

    # --- the protocol ------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> LaunchResult:
        a = request.attempt_id
        folder = self._dir(a)
        with locked(folder):
            found = self._find(a, folder)
            if isinstance(found, _Run):
                # Cannot tell whether it was submitted: submitting now could run it twice.
                return LaunchResult(a, False, error=found.error, retryable=True)
            if found is not None:
                self._record_job(folder, found)
                return LaunchResult(a, True, self._backend_id(found))
            health = self.health()
            if not health.healthy:
                return LaunchResult(a, False, error=health.reason, retryable=True)
            bad_env = sorted(k for k in request.env if not _ENV_NAME.match(k))
            if bad_env:
                return LaunchResult(a, False, error=f"invalid environment names: {bad_env}")
            if not request.command:
                return LaunchResult(a, False, error="empty command")
            if request.files is not None:  # the submitter's workdir, on the shared storage
                try:
                    unpack(Path(request.files), folder / "work")
                except (OSError, ValueError) as exc:
                    return LaunchResult(a, False, error=f"cannot unpack the workdir: {exc}")
            run = self._run(self._sbatch_args(request, folder), stdin=self._script(request, folder))
            if run.error:
                # sbatch may have submitted before failing (a timeout): look again.
                again = self._find(a, folder)
                if isinstance(again, str):
                    self._record_job(folder, again)
                    return LaunchResult(a, True, self._backend_id(again))
                # What one cluster refuses (no such GPU, too many nodes, a full queue,
                # a controller down) another may take.
                return LaunchResult(a, False, error=run.error, retryable=True)
            job_id = run.out.strip().split(";")[0]
            if not job_id.isdigit():
                return LaunchResult(
                    a, False, error=f"sbatch said {run.out.strip()!r}", retryable=True
                )
            self._record_job(folder, job_id)
            return LaunchResult(a, True, self._backend_id(job_id))

    def _backend_id(self, job_id: str) -> str:
        return f"{self._name}:{job_id}"

    def _sbatch_args(self, request: LaunchRequest, folder: Path) -> list[str]:
        a = request.attempt_id
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={_job_name(a)}",
            f"--comment=archipel attempt {a} on site {self._name}",
            f"--partition={self.partition}",
            f"--nodes={request.nodes}",
            f"--output={folder / 'output.log'}",
            "--open-mode=append",
            f"--chdir={request.workdir or (folder / 'work' if request.files else folder)}",
            "--export=NONE",
            "--no-requeue",
        ]
        if request.accelerators:
            args.append(f"--gres=gpu:{request.accelerators.lower()}")
        return [*args, *self.sbatch_args]

    def _script(self, request: LaunchRequest, folder: Path) -> str:
        """The batch script: the attempt's environment, its command, its exit status kept."""
        env: Mapping[str, str] = {
            **request.env,
            "ARCHIPEL_ATTEMPT_ID": request.attempt_id,
            "ARCHIPEL_ATTEMPT_DIR": str(folder),
        }
        lines = ["#!/bin/sh", f"# Archipel attempt {request.attempt_id} on site {self._name}"]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        lines += [
            shlex.join(request.command),
            "code=$?",
            'printf "%s" "$code" > "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" && '
            'mv "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" "$ARCHIPEL_ATTEMPT_DIR/exit_code"',
            'exit "$code"',
        ]
        return "\n".join(lines) + "\n"

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        folders = {a: self._dir(a) for a in attempt_ids}
        if not attempt_ids:
            return {}
        jobs = self._squeue(list(attempt_ids))
        if isinstance(jobs, str):
            reason = f"cannot query Slurm: {jobs}"
            return {a: Observation(a, AttemptState.UNKNOWN, reason=reason) for a in attempt_ids}
        missing = [a for a in attempt_ids if a not in jobs]
        jobs.update(self._sacct(missing))
        result: dict[str, Observation] = {}
        for a in attempt_ids:
            job = jobs.get(a)
            result[a] = self._from_job(a, job) if job else self._forgotten(a, folders[a])
        return result

    def _from_job(self, attempt_id: str, job: _Job) -> Observation:
        backend_id = self._backend_id(job.job_id)
        state = job.state
        if state in _PENDING:
            return Observation(attempt_id, AttemptState.PENDING, backend_id, reason=job.reason)
        if state in _RUNNING:
            return Observation(attempt_id, AttemptState.RUNNING, backend_id, host=job.host)
        if state == "COMPLETED":
            return Observation(attempt_id, AttemptState.SUCCEEDED, backend_id, job.exit_code or 0)
        if state in _CANCELLED:
            return Observation(
                attempt_id, AttemptState.CANCELLED, backend_id, job.exit_code, "cancelled"
            )
        if state in _FAILED:
            if job.signal:
                why = f"killed by signal {job.signal}"
            else:
                why = f"exited with status {job.exit_code}"
            if state != "FAILED":
                why = f"{state.lower().replace('_', ' ')}: {why}"
            return Observation(attempt_id, AttemptState.FAILED, backend_id, job.exit_code, why)
        if state in _PREEMPTED:
            why = f"Slurm ended the job: {state}" + (f" ({job.reason})" if job.reason else "")
            return Observation(attempt_id, AttemptState.PREEMPTED, backend_id, None, why)
        return Observation(
            attempt_id,
            AttemptState.UNKNOWN,
            backend_id,
            reason=f"unrecognised Slurm job state {state!r}",
        )

    def _forgotten(self, attempt_id: str, folder: Path) -> Observation:
        """An attempt Slurm does not report: ours if we recorded it, else unknown."""
        job_id = self._recorded_job(folder)
        if job_id is None:
            return Observation(attempt_id, AttemptState.UNKNOWN)
        backend_id = self._backend_id(job_id)
        try:
            code = int((folder / "exit_code").read_text() or "1")
        except (FileNotFoundError, ValueError):
            code = None
        if (folder / "cancelled").exists():
            return Observation(attempt_id, AttemptState.CANCELLED, backend_id, code, "cancelled")
        if code == 0:
            return Observation(attempt_id, AttemptState.SUCCEEDED, backend_id, 0)
        if code is not None:
            return Observation(
                attempt_id, AttemptState.FAILED, backend_id, code, f"exited with status {code}"
            )
        return Observation(
            attempt_id,
            AttemptState.PREEMPTED,
            backend_id,
            None,
            f"Slurm no longer knows job {job_id} and it left no exit status",
        )

    def cancel(self, attempt_id: str) -> None:
        folder = self._dir(attempt_id)
        jobs = self._squeue([attempt_id])
        if isinstance(jobs, str) or attempt_id not in jobs:
            return
        job = jobs[attempt_id]
        if job.state not in _PENDING | _RUNNING or job.state == "COMPLETING":
            return
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cancelled").touch()
        self._run(["scancel", job.job_id])

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        return read_log(self._dir(attempt_id) / "output.log", offset)

    def health(self) -> SiteHealth:
        run = self._run(
            ["sinfo", "--noheader", f"--partition={self.partition}", "--format=%a|%T|%N"]
        )
        if run.error:
            return SiteHealth(False, f"cannot query Slurm: {run.error}")
        rows = [line.split("|") for line in run.out.splitlines() if line.count("|") == 2]
        if not rows:
            return SiteHealth(False, f"Slurm partition {self.partition} does not exist")
        availability = {avail for avail, _, _ in rows}
        if availability != {"up"}:
            states = ", ".join(sorted(availability))
            return SiteHealth(False, f"Slurm partition {self.partition} is {states}")
        usable = [
            nodes
            for _, state, nodes in rows
            if state.rstrip("*~#!%$@^-+") in _USABLE_NODE_STATES and not state.endswith("*")
        ]
        if not usable:
            states = ", ".join(f"{nodes} {state}" for _, state, nodes in rows)
            return SiteHealth(
                False, f"no node of Slurm partition {self.partition} takes work ({states})"
            )
        return SiteHealth(True)

    # --- operator helpers (failure tests) ----------------------------------------------

    def drain(self) -> None:
        """Set the partition DOWN: queued jobs stay queued, ``health`` reports it."""
        self._set_partition_state("DOWN")

    def resume(self) -> None:
        """Set the partition UP again."""
        self._set_partition_state("UP")

    def _set_partition_state(self, state: str) -> None:
        run = self._run(["scontrol", "update", f"PartitionName={self.partition}", f"State={state}"])
        if run.error:
            raise RuntimeError(run.error)


def _job_number(job_id: str) -> int:
    head = job_id.split("_")[0].split("+")[0]
    return int(head) if head.isdigit() else 0
