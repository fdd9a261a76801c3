"""Run attempts as batch jobs on a Slurm cluster, through its command-line tools.

One :class:`SlurmBackend` is one site: a partition of a cluster. It talks to Slurm
only through ``sbatch``, ``squeue``, ``sacct`` (when the cluster keeps accounting),
``scancel``, ``sinfo`` and ``scontrol``; every call has a timeout and every failure
becomes data (a refused :class:`LaunchResult`, an ``UNKNOWN`` observation with a
reason, an unhealthy :class:`SiteHealth`). The command lines and the batch script
are built in :mod:`archipel.backends._slurm_commands`; what the tools print is read
in :mod:`archipel.backends._slurm_parse`, which also holds the mapping of Slurm's
job states to Archipel's and how the job's host is found.

An attempt is the job named ``archipel-<attempt_id>`` in the partition. ``launch``
holds a file lock on ``<state_dir>/<attempt_id>/``, then looks for the job (the job
id recorded there, then the name in the controller) and submits only when there is
none, so launching twice, or again from a restarted control plane, starts the work
once. Output goes to ``<state_dir>/<attempt_id>/output.log``, so ``state_dir`` must
be on storage the compute nodes share (as Slurm's own ``--output`` requires). The
batch script also writes the command's exit status to ``exit_code`` there, which
answers for jobs the controller has forgotten (after ``MinJobAge``) on clusters
without accounting.

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

from collections.abc import Callable, Sequence
from pathlib import Path

from archipel.backends._files import attempt_folder, locked, read_log, record, recorded, unpack
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)
from archipel.backends._slurm_commands import (
    CommandResult,
    bad_env_names,
    batch_script,
    name_batches,
    partition_state_command,
    run_command,
    sacct_command,
    sbatch_command,
    sinfo_command,
    squeue_command,
)
from archipel.backends._slurm_parse import (
    Job,
    job_observation,
    partition_health,
    read_sacct,
    read_squeue,
)


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

    def _run(self, args: Sequence[str], stdin: str | None = None) -> CommandResult:
        return run_command(
            args, stdin=stdin, slurm_conf=self.slurm_conf, timeout=self.command_timeout
        )

    def _dir(self, attempt_id: str) -> Path:
        return attempt_folder(self.state_dir, attempt_id)

    def _recorded_job(self, folder: Path) -> str | None:
        return recorded(folder, "job_id")

    def _record_job(self, folder: Path, job_id: str) -> None:
        record(folder, "job_id", job_id)

    def _backend_id(self, job_id: str) -> str:
        return f"{self._name}:{job_id}"

    # --- queries -----------------------------------------------------------------------

    def _jobs(
        self,
        command: Callable[[str, str], list[str]],
        read: Callable[[str, dict[str, Job]], None],
        attempt_ids: Sequence[str],
    ) -> tuple[dict[str, Job], str | None]:
        """The jobs of these attempts, a batch of names per call; and the first error."""
        found: dict[str, Job] = {}
        for names in name_batches(attempt_ids):
            run = self._run(command(self.partition, names))
            if run.error:
                return found, run.error
            read(run.out, found)
        return found, None

    def _squeue(self, attempt_ids: Sequence[str]) -> dict[str, Job] | str:
        """The controller's jobs for these attempts (finished ones too), or an error."""
        found, error = self._jobs(squeue_command, read_squeue, attempt_ids)
        return error if error else found

    def _sacct(self, attempt_ids: Sequence[str]) -> dict[str, Job]:
        """Jobs the controller forgot, from accounting (when the cluster keeps it)."""
        if self._sacct_works is False or not attempt_ids:
            return {}
        found, error = self._jobs(sacct_command, read_sacct, attempt_ids)
        if error is None:
            self._sacct_works = True
        elif "accounting storage is disabled" in error.lower():
            self._sacct_works = False
        return found

    def _find(self, attempt_id: str, folder: Path) -> str | CommandResult | None:
        """The job id of an attempt: recorded, else by name in the controller; on error, that."""
        recorded = self._recorded_job(folder)
        if recorded:
            return recorded
        jobs = self._squeue([attempt_id])
        if isinstance(jobs, str):
            return CommandResult("", jobs)
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
            if isinstance(found, CommandResult):
                # Cannot tell whether it was submitted: submitting now could run it twice.
                return LaunchResult(a, False, error=found.error, retryable=True)
            if found is not None:
                return self._launched(a, folder, found)
            refused = self._prepare(request, folder)
            return refused if refused is not None else self._submit(request, folder)

    def _launched(self, attempt_id: str, folder: Path, job_id: str) -> LaunchResult:
        self._record_job(folder, job_id)
        return LaunchResult(attempt_id, True, self._backend_id(job_id))

    def _prepare(self, request: LaunchRequest, folder: Path) -> LaunchResult | None:
        """What refuses the attempt before it is submitted; None when it may go."""
        a = request.attempt_id
        health = self.health()
        if not health.healthy:
            return LaunchResult(a, False, error=health.reason, retryable=True)
        bad_env = bad_env_names(request.env)
        if bad_env:
            return LaunchResult(a, False, error=f"invalid environment names: {bad_env}")
        if not request.command:
            return LaunchResult(a, False, error="empty command")
        if request.files is not None:  # the submitter's workdir, on the shared storage
            try:
                unpack(Path(request.files), folder / "work")
            except (OSError, ValueError) as exc:
                return LaunchResult(a, False, error=f"cannot unpack the workdir: {exc}")
        return None

    def _submit(self, request: LaunchRequest, folder: Path) -> LaunchResult:
        a = request.attempt_id
        sbatch = sbatch_command(request, folder, self._name, self.partition, self.sbatch_args)
        run = self._run(sbatch, stdin=batch_script(request, folder, self._name))
        if run.error:
            # sbatch may have submitted before failing (a timeout): look again.
            again = self._find(a, folder)
            if isinstance(again, str):
                return self._launched(a, folder, again)
            # What one cluster refuses (no such GPU, too many nodes, a full queue,
            # a controller down) another may take.
            return LaunchResult(a, False, error=run.error, retryable=True)
        job_id = run.out.strip().split(";")[0]
        if not job_id.isdigit():
            return LaunchResult(a, False, error=f"sbatch said {run.out.strip()!r}", retryable=True)
        return self._launched(a, folder, job_id)

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        folders = {a: self._dir(a) for a in attempt_ids}
        if not attempt_ids:
            return {}
        jobs = self._squeue(list(attempt_ids))
        if isinstance(jobs, str):
            reason = f"cannot query Slurm: {jobs}"
            return {a: Observation(a, AttemptState.UNOBSERVED, reason=reason) for a in attempt_ids}
        missing = [a for a in attempt_ids if a not in jobs]
        jobs.update(self._sacct(missing))
        result: dict[str, Observation] = {}
        for a in attempt_ids:
            job = jobs.get(a)
            result[a] = self._from_job(a, job) if job else self._forgotten(a, folders[a])
        return result

    def _from_job(self, attempt_id: str, job: Job) -> Observation:
        return job_observation(attempt_id, job, self._backend_id(job.job_id))

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
        if not job.cancellable:
            return
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cancelled").touch()
        self._run(["scancel", job.job_id])

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        return read_log(self._dir(attempt_id) / "output.log", offset)

    def health(self) -> SiteHealth:
        run = self._run(sinfo_command(self.partition))
        if run.error:
            return SiteHealth(False, f"cannot query Slurm: {run.error}")
        return partition_health(self.partition, run.out)

    # --- operator helpers (failure tests) ----------------------------------------------

    def drain(self) -> None:
        """Set the partition DOWN: queued jobs stay queued, ``health`` reports it."""
        self._set_partition_state("DOWN")

    def resume(self) -> None:
        """Set the partition UP again."""
        self._set_partition_state("UP")

    def _set_partition_state(self, state: str) -> None:
        run = self._run(partition_state_command(self.partition, state))
        if run.error:
            raise RuntimeError(run.error)
