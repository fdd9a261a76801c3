"""The Slurm command lines a site runs, the batch script it submits, and running them.

Every call goes through :func:`run_command`: it has a timeout, and every failure
(the tool missing, hanging, or exiting non-zero) comes back as data, a
:class:`CommandResult` with an ``error``, never as an exception.

An attempt is the job named ``archipel-<attempt_id>`` (:func:`job_name`); the
queries name up to :data:`NAMES_PER_QUERY` attempts per call.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from archipel.backends._protocol import LaunchRequest

JOB_PREFIX = "archipel-"
NAMES_PER_QUERY = 200
_SQUEUE_FORMAT = "JobID:|,Name:|,State:|,exit_code:|,NodeList:|,Reason:|"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one CLI call: ``error`` is set when it did not succeed."""

    out: str
    error: str | None = None


def run_command(
    args: Sequence[str], *, stdin: str | None, slurm_conf: Path | None, timeout: float
) -> CommandResult:
    """Run a Slurm tool (against ``slurm_conf`` if given) for at most ``timeout`` seconds."""
    try:
        done = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            text=True,
            env=_environment(slurm_conf),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CommandResult("", f"{args[0]} not found: is the Slurm client installed?")
    except subprocess.TimeoutExpired:
        return CommandResult("", f"{args[0]} did not answer within {timeout:g}s")
    except OSError as exc:
        return CommandResult("", f"cannot run {args[0]}: {exc}")
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        return CommandResult(done.stdout, f"{args[0]} failed: {detail}")
    return CommandResult(done.stdout)


def _environment(slurm_conf: Path | None) -> dict[str, str]:
    """This process's environment, pointing the tools at ``slurm_conf`` when given."""
    env = dict(os.environ)
    if slurm_conf is not None:
        env["SLURM_CONF"] = str(slurm_conf)
    return env


def job_name(attempt_id: str) -> str:
    return JOB_PREFIX + attempt_id


def name_batches(attempt_ids: Sequence[str]) -> Iterator[str]:
    """The attempts' job names, comma-separated, a query's worth at a time."""
    for start in range(0, len(attempt_ids), NAMES_PER_QUERY):
        yield ",".join(job_name(a) for a in attempt_ids[start : start + NAMES_PER_QUERY])


def squeue_command(partition: str, names: str) -> list[str]:
    """The controller's jobs of these names, finished ones too (``squeue --states=all``)."""
    return [
        "squeue",
        "--noheader",
        "--states=all",
        f"--partition={partition}",
        f"--name={names}",
        f"--Format={_SQUEUE_FORMAT}",
    ]


def sacct_command(partition: str, names: str) -> list[str]:
    """Accounting's jobs of these names over the last 30 days."""
    return [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        f"--partition={partition}",
        f"--name={names}",
        "--starttime=now-30days",
        "--format=JobID,JobName,State,ExitCode,NodeList",
    ]


def sinfo_command(partition: str) -> list[str]:
    """The partition's availability and its nodes' states (``avail|state|nodes`` lines)."""
    return ["sinfo", "--noheader", f"--partition={partition}", "--format=%a|%T|%N"]


def partition_state_command(partition: str, state: str) -> list[str]:
    return ["scontrol", "update", f"PartitionName={partition}", f"State={state}"]


def sbatch_command(
    request: LaunchRequest, folder: Path, site: str, partition: str, extra: Sequence[str]
) -> list[str]:
    """``sbatch`` for the attempt, with its output in ``folder``, then the site's ``extra``."""
    a = request.attempt_id
    args = [
        "sbatch",
        "--parsable",
        f"--job-name={job_name(a)}",
        f"--comment=archipel attempt {a} on site {site}",
        f"--partition={partition}",
        f"--nodes={request.nodes}",
        f"--output={folder / 'output.log'}",
        "--open-mode=append",
        f"--chdir={request.workdir or (folder / 'work' if request.files else folder)}",
        "--export=NONE",
        "--no-requeue",
    ]
    if request.accelerators:
        args.append(f"--gres=gpu:{request.accelerators.lower()}")
    return [*args, *extra]


def bad_env_names(env: Mapping[str, str]) -> list[str]:
    """The names the batch script could not export (not shell variable names), sorted."""
    return sorted(k for k in env if not _ENV_NAME.match(k))


def batch_script(request: LaunchRequest, folder: Path, site: str) -> str:
    """The batch script: the attempt's environment, its command, its exit status kept."""
    env: Mapping[str, str] = {
        **request.env,
        "ARCHIPEL_ATTEMPT_ID": request.attempt_id,
        "ARCHIPEL_ATTEMPT_DIR": str(folder),
    }
    lines = ["#!/bin/sh", f"# Archipel attempt {request.attempt_id} on site {site}"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines += [
        shlex.join(request.command),
        "code=$?",
        'printf "%s" "$code" > "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" && '
        'mv "$ARCHIPEL_ATTEMPT_DIR/exit_code.tmp" "$ARCHIPEL_ATTEMPT_DIR/exit_code"',
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"
