"""Usage metering: one record per request, written off the hot path.

The request path only appends a :class:`UsageRecord` to a bounded queue
(``submit`` never blocks and never does I/O); a background task drains the
queue in batches and appends JSON lines to a file from a worker thread. After
the first record of a batch it lingers ``linger`` seconds (50 ms) so that one
thread hand-off carries many records instead of one per request. When
the queue is full a record is dropped and counted (``dropped``), because
stalling requests to protect a meter would turn a slow disk into an outage.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from archipel.gateway import _json


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one request used and cost. ``cost`` is exact, in ``currency``."""

    ts: float  # wall-clock seconds since the epoch, at completion
    request_id: str
    tenant: str
    data_class: str
    model: str
    status: int
    replica: str | None  # "model/name" of the replica that answered, None if none did
    provider: str | None
    region: str | None
    input_tokens: int
    output_tokens: int
    tokens_counted: bool  # True when the upstream gave no usage block and we estimated
    latency_ms: float
    attempts: int
    cost: Decimal
    currency: str
    stream: bool

    def to_json(self) -> str:
        doc = {
            "ts": self.ts,
            "request_id": self.request_id,
            "tenant": self.tenant,
            "data_class": self.data_class,
            "model": self.model,
            "status": self.status,
            "replica": self.replica,
            "provider": self.provider,
            "region": self.region,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens_counted": self.tokens_counted,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "cost": format(self.cost, "f"),  # "0.0000008", never "8E-7"
            "currency": self.currency,
            "stream": self.stream,
        }
        return _json.dumps(doc).decode()


class Meter(Protocol):
    """Where usage goes; the CLI may wire another sink (the ledger, later)."""

    def submit(self, record: UsageRecord) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class JsonlMeter:
    """Appends records to a JSONL file from a background task."""

    def __init__(
        self, path: Path, queue_size: int = 65536, batch: int = 512, linger: float = 0.05
    ) -> None:
        self.path = path
        self.batch = batch
        self.linger = linger
        self.dropped = 0
        self.written = 0
        self._queue: asyncio.Queue[UsageRecord | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: UsageRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._drain(), name="archipel-gateway-meter")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def _drain(self) -> None:
        done = False
        while not done:
            first = await self._queue.get()
            batch: list[UsageRecord] = []
            if first is None:
                done = True
            else:
                batch.append(first)
                if self.linger > 0 and self._queue.qsize() < self.batch:
                    await asyncio.sleep(self.linger)  # let a batch gather
            while not done and len(batch) < self.batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[UsageRecord]) -> None:
        # one write(2) per batch on an O_APPEND descriptor: the kernel appends it whole,
        # so the gateway's worker processes can share one file without splitting lines
        data = "".join(r.to_json() + "\n" for r in batch).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self.written += len(batch)


class MemoryMeter:
    """Keeps records in a list: the in-memory fake for tests."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def submit(self, record: UsageRecord) -> None:
        self.records.append(record)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
