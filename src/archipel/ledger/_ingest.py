"""Ingesting a usage file: read, sort into new / correction / duplicate, write, report.

Each chunk of lines (10,000) is one transaction, so that a control plane
sharing a SQLite file with the ledger waits at most for one chunk, never for a
whole file; a stopped ingest leaves whole chunks, and ingesting the file again
adds the rest. A malformed line is reported with its file and line number and
skipped, and every good line is kept: a gateway stopped mid-write leaves a cut
last line, and the rest of its day must still count. With ``strict``, the
whole file is checked first and its first malformed line refuses it: nothing
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
    if strict:
        _check(path, countries)
    added = Added()
    problems: list[UsageProblem] = []
    lines = 0
    for chunk, done in read_usage(path, countries):
        good = [item for item in chunk if isinstance(item, Entry)]
        problems += [item for item in chunk if isinstance(item, UsageProblem)]
        lines += len(chunk)
        with ledger.transaction() as connection:
            added += ledger.add(connection, good)
        if on_progress is not None:
            on_progress(done)
    return IngestReport(str(path), lines, added, tuple(problems))


def _check(path: Path, countries: Countries) -> None:
    """Raise :class:`MalformedUsageError` at the file's first malformed line."""
    for chunk, _ in read_usage(path, countries):
        for item in chunk:
            if isinstance(item, UsageProblem):
                raise MalformedUsageError(item)
