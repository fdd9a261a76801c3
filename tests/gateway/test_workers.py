"""Worker processes: the gateway on several processes sharing one listen address.

The supervisor is tested in a process of its own (it forks), with workers
that only record what happens to them; then ``archipel gateway --workers 2``
end to end: both workers serve, ``/metrics`` gathers both, SIGHUP reloads
both, a killed worker is replaced without a failed request, SIGTERM drains.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from archipel.gateway import hash_key
from archipel.gateway._config import Limits
from archipel.gateway._limits import InProcessLimiter, split

from .harness import free_port, wait_until

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway" / "gateway.yaml"
PUBLIC_KEY = "sk-demo-public"


@pytest.mark.parametrize(
    ("rpm", "tpm", "share", "want"),
    [
        (600, 200_000, 1, (600, 200_000)),
        (600, 200_000, 2, (300, 100_000)),
        (3, None, 2, (2, None)),  # rounded up: 2 + 2 >= 3, never below the limit
        (1, 7, 4, (1, 2)),  # a limit stays at least 1
        (None, None, 8, (None, None)),  # unlimited stays unlimited
    ],
    ids=["one process", "even split", "rounded up", "at least one", "unlimited"],
)
def test_in_process_limits_are_split_among_the_workers(
    rpm: int | None, tpm: int | None, share: int, want: tuple[int | None, int | None]
) -> None:
    part = split(Limits(requests_per_minute=rpm, tokens_per_minute=tpm), share)
    assert (part.requests_per_minute, part.tokens_per_minute) == want


def test_a_worker_admits_its_share_of_a_burst() -> None:
    limiter = InProcessLimiter({"t": Limits(requests_per_minute=10)}, now=0.0, share=2)
    waits = [asyncio.run(limiter.admit("t", 0.0)) for _ in range(10)]
    assert [w == 0 for w in waits] == [True] * 5 + [False] * 5


def test_a_share_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="share must be at least 1"):
        InProcessLimiter({}, now=0.0, share=0)


# --- the supervisor, in a process of its own ------------------------------------------------

SUPERVISED = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from archipel.gateway import Supervisor

    log = Path(sys.argv[1])
    mode = sys.argv[2]

    def note(text):
        with log.open("a") as fh:
            fh.write(text + "\\n")

    def worker(slot):
        if mode == "crash":
            raise RuntimeError("boom")
        note(f"start {slot.index} {os.getpid()}")
        signal.signal(signal.SIGHUP, lambda *_: note(f"hup {slot.index} {os.getpid()}"))
        while True:
            time.sleep(0.05)

    status = Supervisor(2, worker, log.parent, drain_seconds=1, max_restarts=3).run()
    note(f"exit {status}")
    sys.exit(status)
    """
)


def _lines(log: Path, word: str) -> list[list[str]]:
    text = log.read_text() if log.exists() else ""
    return [line.split()[1:] for line in text.splitlines() if line.startswith(word + " ")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield tmp_path / "events.log", started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _supervise(
    log: Path, mode: str, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED, str(log), mode],
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    started.append(proc)
    return proc


def test_the_supervisor_replaces_a_dead_worker_forwards_sighup_and_stops_them_all(
    supervised: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    log, started = supervised
    proc = _supervise(log, "serve", started)
    wait_until(lambda: len(_lines(log, "start")) == 2)
    first = {int(i): int(pid) for i, pid in _lines(log, "start")}
    assert set(first) == {0, 1}

    os.kill(first[1], signal.SIGKILL)  # worker 1 dies
    wait_until(lambda: len(_lines(log, "start")) == 3)
    index, pid = _lines(log, "start")[-1]
    assert index == "1" and int(pid) != first[1]  # the same slot, a new process
    current = {0: first[0], 1: int(pid)}

    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(_lines(log, "hup")) == 2)
    assert {(int(i), int(p)) for i, p in _lines(log, "hup")} == set(current.items())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert _lines(log, "exit") == [["0"]]
    assert not any(_alive(p) for p in current.values())


def test_a_crash_loop_stops_the_supervisor_with_status_1(
    supervised: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    log, started = supervised
    proc = _supervise(log, "crash", started)
    assert proc.wait(timeout=60) == 1
    assert _lines(log, "exit") == [["1"]]


# --- `archipel gateway --workers 2`, end to end ---------------------------------------------


def _chat(base: str, key: str) -> int:
    body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
    try:
        # a new connection each time, so that both workers get some
        with httpx.Client(timeout=10) as client:
            return client.post(
                f"{base}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ).status_code
    except httpx.TransportError:
        return 0


def _requests_by_worker(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "archipel_gateway_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    w = s.labels["worker"]
                    counts[w] = counts.get(w, 0) + s.value
    return counts


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    return [int(p) for p in children.read_text().split()]


def _two_workers(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[dict[str, Any], Path, subprocess.Popen[bytes], str, int]:
    """The example gateway with two workers in front of a fake upstream: its
    configuration (as a document and a file), the supervisor, its URL and its port."""
    upstream_port, port = free_port(), free_port()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["listen"]["port"] = port
    for replica in doc["models"]["llama-3.1-8b"]["replicas"]:
        replica["base_url"] = f"http://127.0.0.1:{upstream_port}/v1"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(doc))
    fake = [sys.executable, "-m", "archipel.gateway.fake_upstream", "--port", str(upstream_port)]
    processes.append(subprocess.Popen(fake, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    gateway = subprocess.Popen(
        [str(BIN / "archipel"), "gateway", "--config", str(config), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    processes.append(gateway)
    return doc, config, gateway, f"http://127.0.0.1:{port}", port


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_two_workers_serve_report_reload_recover_and_drain(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    doc, config, gateway, base, _ = _two_workers(tmp_path, processes)
    wait_until(lambda: _chat(base, PUBLIC_KEY) == 200)
    wait_until(lambda: len(_worker_pids(gateway.pid)) == 2)

    before = _requests_by_worker(base)
    statuses = [_chat(base, PUBLIC_KEY) for _ in range(60)]
    assert statuses == [200] * 60
    after = _requests_by_worker(base)
    assert set(after) == {"0", "1"}, after  # both served, both reported
    assert sum(after.values()) - sum(before.values()) == 60

    doc["tenants"]["newcomer"] = {"key_sha256": [hash_key("sk-new")], "data_class": "public"}
    config.write_text(yaml.safe_dump(doc))
    gateway.send_signal(signal.SIGHUP)
    wait_until(lambda: all(_chat(base, "sk-new") == 200 for _ in range(10)))

    victim = _worker_pids(gateway.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(_worker_pids(gateway.pid)) == 2 and victim not in _worker_pids(gateway.pid)
    )
    time.sleep(0.5)  # the new worker reads its configuration, then accepts
    assert all(_chat(base, "sk-new") == 200 for _ in range(20))  # the new one has the reload too

    served = sum(_requests_by_worker(base).values())
    gateway.send_signal(signal.SIGTERM)
    assert gateway.wait(timeout=60) == 0
    usage = (tmp_path / doc["metering"]["path"]).read_text().splitlines()
    records = [json.loads(line) for line in usage]  # every line whole, none split by another
    assert len(records) >= served


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_workers_do_not_outlive_a_killed_supervisor(
    supervised: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    log, started = supervised
    proc = _supervise(log, "serve", started)
    wait_until(lambda: len(_lines(log, "start")) == 2)
    workers = [int(pid) for _, pid in _lines(log, "start")]
    proc.kill()  # SIGKILL: the supervisor cannot stop them itself
    proc.wait(timeout=10)
    wait_until(lambda: not any(_alive(p) for p in workers))


def test_a_signal_to_the_supervisors_group_reaches_the_workers_once(
    supervised: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    log, started = supervised
    proc = _supervise(log, "serve", started)
    wait_until(lambda: len(_lines(log, "start")) == 2)
    workers = [int(pid) for _, pid in _lines(log, "start")]
    # the workers have groups of their own: a terminal's Ctrl-C or a group kill of the
    # supervisor's group is forwarded by the supervisor, once, instead of hitting them twice
    assert all(os.getpgid(p) == p for p in workers)
    os.killpg(proc.pid, signal.SIGHUP)  # the supervisor leads a session of its own
    wait_until(lambda: len(_lines(log, "hup")) == 2)
    time.sleep(0.3)
    assert len(_lines(log, "hup")) == 2  # one each, not two


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_a_burst_of_connections_is_spread_over_the_workers(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """32 connections opened at once, as a load generator or a client pool opens them, then
    one request on each: both workers answer some. (On one shared listening socket the
    first worker to wake accepted the whole burst, and kept those connections.)"""
    _, _, gateway, base, port = _two_workers(tmp_path, processes)
    wait_until(lambda: len(_worker_pids(gateway.pid)) == 2)
    wait_until(lambda: _chat(base, PUBLIC_KEY) == 200)
    before = _requests_by_worker(base)

    body = json.dumps({"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {PUBLIC_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        for conn in burst:
            conn.sendall(request)
        answers = [conn.makefile("rb").readline() for conn in burst]
    finally:
        for conn in burst:
            conn.close()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    after = _requests_by_worker(base)
    served = {w: after.get(w, 0) - before.get(w, 0) for w in ("0", "1")}
    assert sum(served.values()) == 32 and min(served.values()) > 0, served
