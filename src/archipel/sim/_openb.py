"""GPU jobs from the Alibaba ``openb`` pod trace (ATC'23, *Beware of Fragmentation*).

Each row is a pod: its creation, scheduling and deletion times in seconds from
the trace's start, and the GPUs it asked for. A job here is a pod that was
scheduled and asked for exactly one GPU (whole or a share of one: a cloud rents
whole GPUs); its *work* is how long it ran on the trace's cluster (deletion
minus scheduling), and it *arrives* at its creation. The few multi-GPU pods (51
of the shared window's 5,353) and the never-scheduled ones are left out and
counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from archipel.core import InputError

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job: when it arrives (seconds from the window's start) and how long it runs."""

    name: str
    arrival: float
    work: float


@dataclass(frozen=True, slots=True)
class JobTrace:
    jobs: tuple[TraceJob, ...]
    source: str
    skipped_multi_gpu: int
    skipped_unscheduled: int


def load_openb(path: Path, first_day: float, days: float) -> JobTrace:
    """The jobs created within ``[first_day, first_day + days)`` of the trace's days."""
    start, end = first_day * DAY, (first_day + days) * DAY
    jobs: list[TraceJob] = []
    multi = unscheduled = 0
    try:
        with path.open(newline="") as handle:
            for n, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    created = float(row["creation_time"])
                    if not start <= created < end:
                        continue
                    gpus = int(row["num_gpu"])
                    if gpus != 1:
                        multi += gpus > 1
                        continue
                    if not row["scheduled_time"]:
                        unscheduled += 1
                        continue
                    work = float(row["deletion_time"]) - float(row["scheduled_time"])
                except (KeyError, ValueError) as exc:
                    raise InputError(
                        f"{path}: line {n}: not an openb pod row ({exc}); the columns are "
                        "name, num_gpu, creation_time, scheduled_time, deletion_time, ..."
                    ) from None
                if work > 0:
                    jobs.append(TraceJob(row["name"], created - start, work))
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    jobs.sort(key=lambda j: (j.arrival, j.name))
    return JobTrace(tuple(jobs), str(path), multi, unscheduled)


# -- the trace as its cluster saw it: every pod, every node (the fidelity replay) -------------


@dataclass(frozen=True, slots=True)
class Pod:
    """One row of the pod list, as asked and as it went.

    ``gpu_milli`` is the share of one GPU a one-GPU pod asked for (1000: all of it); a pod of
    several GPUs takes them whole. ``scheduled`` is ``None`` for a pod that never was.
    """

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    created: float
    scheduled: float | None
    deleted: float

    @property
    def shares_a_gpu(self) -> bool:
        return self.num_gpu == 1 and self.gpu_milli < 1000


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the cluster: what a pod may take of it."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


def load_pods(path: Path) -> tuple[Pod, ...]:
    """Every pod of an ``openb`` pod list, in creation order (then name)."""
    pods: list[Pod] = []
    for n, row in _rows(path, "pod"):
        try:
            pod = Pod(
                row["name"],
                int(row["cpu_milli"]),
                int(row["memory_mib"]),
                int(row["num_gpu"]),
                int(row["gpu_milli"]),
                float(row["creation_time"]),
                float(row["scheduled_time"]) if row["scheduled_time"] else None,
                float(row["deletion_time"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise _bad(path, n, "pod", exc) from None
        problem = _pod_problem(pod)
        if problem:
            raise InputError(f"{path}: line {n}: pod {pod.name} {problem}")
        pods.append(pod)
    pods.sort(key=lambda p: (p.created, p.name))
    return tuple(pods)


def load_nodes(path: Path) -> tuple[Node, ...]:
    """Every node of an ``openb`` node list, in the file's order."""
    nodes: list[Node] = []
    for n, row in _rows(path, "node"):
        try:
            node = Node(
                row["sn"],
                int(row["cpu_milli"]),
                int(row["memory_mib"]),
                int(row["gpu"]),
                row["model"] or "",
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise _bad(path, n, "node", exc) from None
        if min(node.cpu_milli, node.memory_mib, node.gpus) < 0:
            raise InputError(f"{path}: line {n}: node {node.name} has a negative capacity")
        nodes.append(node)
    if not nodes:
        raise InputError(f"{path}: the node list has no node")
    return tuple(nodes)


def _pod_problem(pod: Pod) -> str | None:
    if min(pod.cpu_milli, pod.memory_mib, pod.num_gpu, pod.gpu_milli) < 0:
        return "asks for a negative amount"
    if pod.num_gpu == 1 and not 0 < pod.gpu_milli <= 1000:
        return f"asks for gpu_milli {pod.gpu_milli} of its GPU; a share is 1 to 1000"
    if pod.scheduled is not None and not pod.created <= pod.scheduled <= pod.deleted:
        return "is scheduled before its creation or after its deletion"
    if pod.deleted < pod.created:
        return "is deleted before its creation"
    return None


_COLUMNS = {
    "pod": "name, cpu_milli, memory_mib, num_gpu, gpu_milli, creation_time, scheduled_time, "
    "deletion_time, ...",
    "node": "sn, cpu_milli, memory_mib, gpu, model",
}


def _rows(path: Path, what: str) -> list[tuple[int, dict[str, str]]]:
    """The file's rows, numbered by line; a row of more or fewer cells than the header is
    refused (``csv`` would fill it with ``None``)."""
    try:
        with path.open(newline="") as handle:
            rows = list(enumerate(csv.DictReader(handle), start=2))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} list ({exc})") from None
    for n, row in rows:
        if None in row or None in row.values():
            raise _bad(path, n, what, ValueError("not as many cells as the header has"))
    return rows


def _bad(path: Path, line: int, what: str, exc: Exception) -> InputError:
    return InputError(
        f"{path}: line {line}: not an openb {what} row ({exc!r}); the columns are {_COLUMNS[what]}"
    )
