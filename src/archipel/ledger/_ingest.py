"""Ingesting a usage file: read, sort into new / correction / duplicate, write, report.

One file is one transaction. A malformed line is reported with its file and
line number and skipped, and every good line is kept: a gateway stopped
mid-write leaves a cut last line, and the rest of its day must still count.
With ``strict``, the first malformed line refuses the whole file and nothing
is written. Either way, ingesting the file again once it is fixed adds exactly
the lines that were missing, since everything else is already there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from archipel.core import InputError
from archipel.ledger._entry import Entry
from archipel.ledger._store import Added, Ledger
from archipel.ledger._usage import Countries, UsageProblem, read_usage


class MalformedUsageError(InputError):
    """A strict ingest met a line that is not a usage record (nothing was written)."""

    def __init__(self, problem: UsageProblem) -> None:
        super().__init__(f"{problem} (nothing was ingested: fix the line, or drop --strict)")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest read and did."""

    path: str
    lines: int
    added: Added
    problems: tuple[UsageProblem, ...] = field(default=())


def ingest_usage(
    ledger: Ledger,
    path: Path,
    countries: Countries,
    *,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Add the gateway usage log at ``path`` to ``ledger``; ``on_progress(bytes read)``."""
    if not path.is_file():
        raise InputError(f"--usage {path}: no such file (the gateway's metering.path)")
    added = Added()
    problems: list[UsageProblem] = []
    lines = 0
    with ledger.transaction() as connection:
        for chunk, done in read_usage(path, countries):
            good: list[Entry] = []
            for item in chunk:
                if isinstance(item, Entry):
                    good.append(item)
                elif strict:
                    raise MalformedUsageError(item)
                else:
                    problems.append(item)
            lines += len(chunk)
            added += ledger.add(connection, good)
            if on_progress is not None:
                on_progress(done)
    return IngestReport(str(path), lines, added, tuple(problems))
