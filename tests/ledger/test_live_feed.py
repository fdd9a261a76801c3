"""The control plane and the gateway feed the ledger as they run, in real processes.

A real ``archipel server`` on one local site runs a tiny job to its end; a real
``archipel gateway --ledger`` in front of the fake upstream answers a few
requests. The ledger (the server's own database) then holds the run, priced at
its site's terms, and the requests, priced as the gateway metered them; and
restarting both changes nothing in it. Loopback only; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from archipel.controlplane import Store
from archipel.core import Money
from archipel.ledger import Ledger
from archipel.ledger._frame import ENTRY_COLUMNS

from ..gateway.harness import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "sk-demo-public"  # its SHA-256 is in examples/gateway/gateway.yaml

SITES = {
    "sites": [
        {
            "name": "paris",
            "backend": "local",
            "provider": "scaleway",
            "region": "fr-par",
            "country": "FR",
            "accelerators": "H100:2",  # a local site standing in for one with 2 GPUs a slot
            "slots": 1,
            "price_per_hour": "2.50",
            "currency": "EUR",
        }
    ]
}
JOB = {
    "name": "tiny-train",
    "kind": "training",
    "resources": {"accelerators": "H100:2"},
    "data": {"class": "internal"},
    "run": {"command": [sys.executable, "-c", "import time; time.sleep(0.5)"]},
}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


class Processes:
    """Processes this test started, stopped (SIGTERM, then waited for) by their handle."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    for proc in reversed(procs.started):
        procs.stop(proc)


def _server(procs: Processes, home: Path, db: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ARCHIPEL_DATA_DIR": str(home)}
    args = [str(BIN / "archipel"), "server", "--sites", str(home / "sites.yaml"),
            "--port", str(port), "--db", db, "--interval", "0.2", "--ledger-interval", "0.2"]  # fmt: skip
    proc = procs.start(args, env, home / "server.log")
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"))
    return proc


def _gateway(procs: Processes, config: Path, db: str, port: int) -> subprocess.Popen[bytes]:
    args = [str(BIN / "archipel"), "gateway", "--config", str(config),
            "--ledger", db, "--ledger-interval", "0.2"]  # fmt: skip
    proc = procs.start(args, dict(os.environ), config.parent / "gateway.log")
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"))
    return proc


def _entries(db: str, source: str) -> list[Any]:
    """The ledger's current entries of ``source``, from both its stores (``Ledger.frame``)."""
    ledger = Ledger(db)
    try:
        columns = ", ".join('"' + c + '"' for c in ENTRY_COLUMNS)
        with ledger.frame() as frame:
            cursor = frame.execute(
                f"SELECT {columns} FROM entries WHERE source = ? ORDER BY key", [source]
            )
            rows = [dict(zip(ENTRY_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    finally:
        ledger.close()
    for row in rows:
        row["start"], row["end"] = (row[k].replace(tzinfo=UTC) for k in ("start", "end"))
        cost, currency = row.pop("cost"), row.pop("currency")
        row["cost"] = None if currency is None else Money(Decimal(cost).normalize(), currency)
    return [SimpleNamespace(**row) for row in rows]


def _rows(db: str) -> int:
    """Every row of the ledger, superseded or not, in both stores: a restart must add none."""
    engine = create_engine(db)
    try:
        with engine.connect() as c:
            rows = int(c.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one())
            parts = c.execute(text("SELECT coalesce(sum(rows), 0) FROM ledger_parts"))
            return rows + int(parts.scalar_one())
    finally:
        engine.dispose()


def _nano(value: Fraction) -> Decimal:
    """A fraction rounded half-even to 1e-9, by integer arithmetic."""
    scaled = value * 10**9
    return (
        (Decimal(scaled.numerator) / Decimal(scaled.denominator))
        .quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        .scaleb(-9)
    )


def _hours(entry: Any) -> Fraction:
    delta = entry.end - entry.start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Fraction(micros, 3_600_000_000)


def test_a_run_and_gateway_requests_land_in_the_ledger_once(
    tmp_path: Path, processes: Processes
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "sites.yaml").write_text(yaml.safe_dump(SITES))
    db = f"sqlite:///{home / 'state.db'}"
    cp_port = free_port()

    # -- the control plane runs a job to its end ---------------------------------------
    server = _server(processes, home, db, cp_port)
    token = (home / "token").read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{cp_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as c:
        created = c.post("/v1/runs", json=JOB)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        wait_until(lambda: c.get(f"/v1/runs/{run_id}").json()["state"] == "succeeded", 60)
    wait_until(lambda: len(_entries(db, "runs")) == 1, 30)

    (run,) = _entries(db, "runs")
    store = Store(db)
    try:
        (attempt,) = store.attempts(run_id)
    finally:
        store.close()
    assert run.key == attempt.id and run.workload == "tiny-train" and run.tenant == "default"
    assert run.start == attempt.created_at.replace(tzinfo=UTC)  # placed, then launched
    assert run.end > run.start
    assert (run.provider, run.region, run.country, run.data_class) == (
        "scaleway", "fr-par", "FR", "internal"
    )  # fmt: skip
    hours = _hours(run)
    assert run.gpu_hours == _nano(2 * hours)  # 2 GPUs a slot
    assert run.cost is not None and run.cost.currency == "EUR"
    assert run.cost.amount == _nano(Fraction(5, 2) * hours)  # EUR 2.50 an hour

    # -- the gateway answers a few requests ---------------------------------------------
    ports = {"upstream": free_port(), "gateway": free_port()}
    doc = yaml.safe_load((ROOT / "examples/gateway/gateway.yaml").read_text())
    doc["listen"]["port"] = ports["gateway"]
    doc["models"]["llama-3.1-8b"]["replicas"] = [
        {**doc["models"]["llama-3.1-8b"]["replicas"][0],
         "base_url": f"http://127.0.0.1:{ports['upstream']}/v1"}
    ]  # fmt: skip
    config = tmp_path / "gateway" / "gateway.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(doc))
    processes.start(
        [sys.executable, "-m", "archipel.gateway.fake_upstream",
         "--port", str(ports["upstream"]), "--name", "ovh"],
        dict(os.environ), tmp_path / "upstream.log",
    )  # fmt: skip
    wait_until(lambda: _answers(f"http://127.0.0.1:{ports['upstream']}/v1/models"))
    gateway = _gateway(processes, config, db, ports["gateway"])
    for question in ("hello", "what is a ledger?", "and a commitment?"):
        answer = httpx.post(
            f"http://127.0.0.1:{ports['gateway']}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "llama-3.1-8b", "messages": [{"role": "user", "content": question}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    wait_until(lambda: len(_entries(db, "gateway")) == 3, 30)

    usage = [
        json.loads(line)
        for line in (config.parent / "gateway-usage.jsonl").read_text().splitlines()
    ]
    assert len(usage) == 3
    by_request = {e.key: e for e in _entries(db, "gateway")}
    for record in usage:
        entry = by_request[record["request_id"]]
        assert (entry.tenant, entry.provider, entry.region) == ("lab", "ovhcloud", "gra")
        assert entry.input_tokens == record["input_tokens"] > 0
        # EUR 0.20 per million tokens, input and output alike
        expected = Fraction(20, 100) * (record["input_tokens"] + record["output_tokens"]) / 10**6
        assert entry.cost is not None and entry.cost.currency == "EUR"
        assert Fraction(entry.cost.amount) == expected

    # -- restarting both feeds changes nothing --------------------------------------------
    rows = _rows(db)
    processes.stop(gateway)
    processes.stop(server)
    _server(processes, home, db, cp_port)
    _gateway(processes, config, db, ports["gateway"])
    for proc in processes.started[-2:]:
        processes.stop(proc)  # each ends with one last move or ingest
    assert _rows(db) == rows
    assert [e.key for e in _entries(db, "runs")] == [attempt.id]
    assert len(_entries(db, "gateway")) == 3
