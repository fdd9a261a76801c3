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
