"""Usage records leave the hot path through a bounded queue to a JSONL file."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from archipel.gateway import JsonlMeter, UsageRecord


def record(n: int) -> UsageRecord:
    return UsageRecord(
        ts=1.0, request_id=f"r{n}", tenant="lab", data_class="public", model="llama",
        status=200, replica="llama/ovh", provider="ovhcloud", region="gra", input_tokens=7,
        output_tokens=5, tokens_counted=False, latency_ms=1.5, attempts=1,
        cost=Decimal("0.0000044"), currency="EUR", stream=False,
    )  # fmt: skip


def test_records_are_appended_as_json_lines_and_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "usage" / "gateway.jsonl"

    async def main() -> JsonlMeter:
        meter = JsonlMeter(path, queue_size=100, batch=7)
        await meter.start()
        for n in range(20):
            meter.submit(record(n))
        await meter.close()
        return meter

    meter = asyncio.run(main())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [d["request_id"] for d in lines] == [f"r{n}" for n in range(20)]
    assert lines[0]["cost"] == "0.0000044"  # money stays exact: a string, not a float
    assert meter.written == 20 and meter.dropped == 0


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    async def main() -> JsonlMeter:
        meter = JsonlMeter(tmp_path / "u.jsonl", queue_size=3)
        await meter.start()
        for n in range(10):  # no await in between: the writer cannot drain
            meter.submit(record(n))
        await meter.close()
        return meter

    meter = asyncio.run(main())
    assert (meter.written, meter.dropped) == (3, 7)
