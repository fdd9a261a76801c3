"""Live feeds into the ledger: ended control-plane attempts, and the gateway's usage log.

The control plane and the gateway never import the ledger (they are siblings);
this module composes them. Both feeds are idempotent, so a restart, a crash or
two servers moving the same rows write nothing twice:

- **attempts**: the control plane writes an ended attempt into its outbox
  (``attempt_endings``) in the transaction that records the end;
  :func:`move_endings` prices each one (its placement's terms times its hours),
  adds it to the ledger keyed by attempt id, and only then takes it out of the
  outbox. A crash in between leaves the row, which is moved again: the ledger
  sees the very same record and adds nothing.
- **gateway**: :class:`Every` calls :func:`archipel.ledger.ingest_columnar` on the
  usage log every few seconds and once at shutdown, off the request path. Each
  call reads on from the last complete line the previous one took, so a day
  of log is read once, not once a tick; a request already in the ledger is a
  duplicate and is not added again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archipel.controlplane import AttemptEnding, Store
    from archipel.ledger import ColumnarReport, Entry, Ledger

log = logging.getLogger("archipel.ledger.feed")

#: the finest fraction a metered hour, GPU-hour or cost is kept to: a nano-unit
NANO = Decimal("1e-9")
_MICROS_PER_HOUR = 3_600_000_000
#: the source of ended control-plane attempts in the ledger
RUNS = "runs"


def hours_between(start: datetime, end: datetime, per_hour: Decimal) -> Decimal:
    """``per_hour`` times the hours from ``start`` to ``end``, exact to the nano-unit
    (rounded half-even once, at the end); a negative span counts as none."""
    delta = end - start
    micros = max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    with localcontext() as ctx:
        ctx.prec = 60
        return (per_hour * micros / _MICROS_PER_HOUR).quantize(NANO, rounding=ROUND_HALF_EVEN)


def ending_entry(ending: AttemptEnding) -> Entry:
    """The ledger entry of an ended attempt: its GPU-hours and cost at its placement's terms.

    ``start`` is when the attempt was placed, ``end`` when its end was recorded
    (the round that saw it end); an attempt placed before terms were recorded
    has no price (``cost`` is ``None``).
    """
    from archipel.core import Money
    from archipel.ledger import Entry

    start = ending.started.replace(tzinfo=UTC)
    end = max(ending.ended.replace(tzinfo=UTC), start)
    terms = ending.terms
    extra: dict[str, Any] = {}
    if terms is not None and "accelerator" in _ENTRY_FIELDS:  # a newer Entry carries it
        extra["accelerator"] = terms.accelerator
    return Entry(
        source=RUNS,
        key=ending.attempt_id,
        start=start,
        end=end,
        tenant=ending.tenant,
        cost=(
            None
            if terms is None
            else Money(hours_between(start, end, terms.price_per_hour), terms.currency)
        ),
        workload=ending.name,
        provider=None if terms is None else terms.provider,
        region=None if terms is None else terms.region or None,
        country=None if terms is None else terms.country,
        data_class=_data_class(ending),
        gpu_hours=Decimal(0) if terms is None else hours_between(start, end, terms.gpus),
        **extra,
    )


def _entry_fields() -> frozenset[str]:
    from archipel.ledger import Entry

    return frozenset(f.name for f in dataclasses.fields(Entry))


_ENTRY_FIELDS = _entry_fields()


def _data_class(ending: AttemptEnding) -> str | None:
    try:
        return ending.workload.data.class_
    except ValueError:  # a spec an older version stored and this one cannot read
        return None


def move_endings(store: Store, ledger: Ledger, batch: int = 1000) -> int:
    """Move every ended attempt from the control plane's outbox into the ledger.

    Each batch is added to the ledger (one transaction) before it leaves the
    outbox, so nothing is lost; moving a row twice adds nothing, so nothing is
    doubled. Returns how many attempts were moved.
    """
    moved = 0
    while True:
        endings = store.endings(batch)
        if not endings:
            return moved
        with ledger.transaction() as connection:
            ledger.add(connection, [ending_entry(e) for e in endings])
        store.forget_endings([e.attempt_id for e in endings])
        moved += len(endings)
        if len(endings) < batch:
            return moved


def ingest_log(ledger: Ledger, path: Path) -> ColumnarReport | None:
    """Ingest what the gateway's usage log gained since the last call into the ledger's
    columnar store, as ``archipel ledger ingest --usage`` does; ``None`` while there is
    no log yet, or it has not grown (no batch is recorded for nothing)."""
    from archipel.catalog import load_regions
    from archipel.ledger import ingest_columnar
    from archipel.ledger._columnar import read_up_to

    if not path.is_file():
        return None
    offset = read_up_to(ledger, path)
    if offset and path.stat().st_size == offset:
        return None
    report = ingest_columnar(ledger, path, load_regions(), fmt="usage")
    for problem in report.problems:
        log.warning("usage log: %s", problem)
    return report


class Every:
    """Calls ``work`` every ``seconds`` in a background thread, and once more at :meth:`stop`.

    An exception in ``work`` is logged and the next call comes as planned: a
    ledger briefly unreachable must not stop the feed, nor what it feeds from.
    """

    def __init__(self, name: str, seconds: float, work: Callable[[], object]) -> None:
        self.seconds = seconds
        self.work = work
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one call at a time (the loop's, or the last one)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Every:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            self.run_once()

    def run_once(self) -> None:
        with self._lock:
            try:
                self.work()
            except Exception:
                log.exception(
                    "%s: feeding the ledger raised; trying again later", self._thread.name
                )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop, then call ``work`` a last time (what came in since its last call)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.run_once()

    @property
    def lock(self) -> threading.Lock:
        """Held while ``work`` runs (a fork waits for it: see :func:`hold_across_fork`)."""
        return self._lock


def hold_across_fork(lock: threading.Lock) -> None:
    """Make ``os.fork`` wait until ``lock`` is free, so that a child is never forked
    while the feed's thread is half-way through a database write it holds locks for."""
    import os

    def release() -> None:
        lock.release()

    os.register_at_fork(before=lock.acquire, after_in_parent=release, after_in_child=release)
