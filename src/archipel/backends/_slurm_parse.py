"""What Slurm's tools print, in Archipel's terms: jobs (``squeue``, ``sacct``), nodes (``sinfo``).

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archipel.backends._protocol import AttemptState, Observation, SiteHealth
from archipel.backends._slurm_commands import JOB_PREFIX

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
class Job:
    """One job as Slurm reports it."""

    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    reason: str | None
    host: str | None = None  # the first node allocated to it

    @property
    def cancellable(self) -> bool:
        """Queued or running, and not already on its way out."""
        return self.state in _PENDING | _RUNNING and self.state != "COMPLETING"


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


def _job_number(job_id: str) -> int:
    head = job_id.split("_")[0].split("+")[0]
    return int(head) if head.isdigit() else 0


def _first_word(text: str) -> str:
    return text.split()[0] if text.strip() else ""


def read_squeue(out: str, found: dict[str, Job]) -> None:
    """Add ``squeue``'s jobs to ``found``, by attempt id; of several, the oldest is the attempt."""
    for line in out.splitlines():
        parts = line.split("|", 5)
        if len(parts) < 6 or not parts[1].startswith(JOB_PREFIX):
            continue
        job_id, name, state, status, nodes, reason = parts
        code, sig = _parse_wait_status(status)
        why = reason.strip().rstrip("|").strip()
        job = Job(
            job_id.strip(),
            _first_word(state),
            code,
            sig,
            None if why in {"", "None", "(null)"} else why,
            _first_host(nodes),
        )
        attempt_id = name[len(JOB_PREFIX) :]
        # Several jobs of one name (should not happen): the oldest is the attempt.
        current = found.get(attempt_id)
        if current is None or _job_number(job.job_id) < _job_number(current.job_id):
            found[attempt_id] = job


def read_sacct(out: str, found: dict[str, Job]) -> None:
    """Add ``sacct``'s jobs to ``found``, by attempt id; of several, the first listed."""
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) < 5 or not parts[1].startswith(JOB_PREFIX):
            continue
        code, sig = _parse_wait_status(parts[3])
        found.setdefault(
            parts[1][len(JOB_PREFIX) :],
            Job(parts[0], _first_word(parts[2]), code, sig, None, _first_host(parts[4])),
        )


def job_observation(attempt_id: str, job: Job, backend_id: str) -> Observation:
    """The attempt as its job's state says (the table in the module's docstring)."""
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
        return Observation(attempt_id, AttemptState.FAILED, backend_id, job.exit_code, _why(job))
    if state in _PREEMPTED:
        why = f"Slurm ended the job: {state}" + (f" ({job.reason})" if job.reason else "")
        return Observation(attempt_id, AttemptState.PREEMPTED, backend_id, None, why)
    return Observation(
        attempt_id,
        AttemptState.UNOBSERVED,
        backend_id,
        reason=f"unrecognised Slurm job state {state!r}",
    )


def _why(failed: Job) -> str:
    """Why a job failed: its signal or exit status, after its state unless plain FAILED."""
    if failed.signal:
        why = f"killed by signal {failed.signal}"
    else:
        why = f"exited with status {failed.exit_code}"
    if failed.state != "FAILED":
        why = f"{failed.state.lower().replace('_', ' ')}: {why}"
    return why


def partition_health(partition: str, sinfo: str) -> SiteHealth:
    """Healthy when the partition is up and one of its nodes takes work (``sinfo`` lines)."""
    rows = [line.split("|") for line in sinfo.splitlines() if line.count("|") == 2]
    if not rows:
        return SiteHealth(False, f"Slurm partition {partition} does not exist")
    availability = {avail for avail, _, _ in rows}
    if availability != {"up"}:
        states = ", ".join(sorted(availability))
        return SiteHealth(False, f"Slurm partition {partition} is {states}")
    usable = [
        nodes
        for _, state, nodes in rows
        if state.rstrip("*~#!%$@^-+") in _USABLE_NODE_STATES and not state.endswith("*")
    ]
    if not usable:
        states = ", ".join(f"{nodes} {state}" for _, state, nodes in rows)
        return SiteHealth(False, f"no node of Slurm partition {partition} takes work ({states})")
    return SiteHealth(True)
