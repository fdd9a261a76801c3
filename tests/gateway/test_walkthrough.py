"""The README's gateway walkthrough, step by step, in real processes.

Two fake upstreams, the CLI gateway on the shipped example configuration,
``examples/gateway/chat.py`` (the official openai client), then one upstream
killed: the ``lab`` tenant sees no error, the ``clinic`` tenant is refused
rather than sent to the US. Ports are free ones instead of the README's fixed
ones, so the test cannot collide with anything already listening.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .harness import free_port, wait_until

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "examples" / "gateway"
BIN = Path(sys.executable).parent


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_the_readme_walkthrough(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    ports = {"ovh": free_port(), "aws": free_port(), "gateway": free_port()}
    doc = yaml.safe_load((EXAMPLE / "gateway.yaml").read_text())
    doc["listen"]["port"] = ports["gateway"]
    replicas = doc["models"]["llama-3.1-8b"]["replicas"]
    for replica, name in zip(replicas, ["ovh", "aws"], strict=True):
        replica["base_url"] = f"http://127.0.0.1:{ports[name]}/v1"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(doc))

    fakes = {}
    for name in ("ovh", "aws"):
        fakes[name] = subprocess.Popen(
            [sys.executable, "-m", "archipel.gateway.fake_upstream", "--port", str(ports[name]),
             "--name", name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(fakes[name])
    gateway = subprocess.Popen(
        [str(BIN / "archipel"), "gateway", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    processes.append(gateway)
    base = f"http://127.0.0.1:{ports['gateway']}"
    for url in (f"http://127.0.0.1:{ports['ovh']}/v1/models", f"{base}/healthz"):
        wait_until(lambda url=url: _answers(url))

    def chat() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(EXAMPLE / "chat.py"), "--base-url", f"{base}/v1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    before = chat()
    assert before.returncode == 0, before.stdout + before.stderr
    lines = before.stdout.splitlines()
    assert len(lines) == 4
    assert all("Hello from ovh." in line for line in lines)

    fakes["ovh"].send_signal(signal.SIGTERM)  # OVHcloud goes down
    fakes["ovh"].wait(timeout=30)
    after = chat()
    assert after.returncode == 0, after.stdout + after.stderr  # no error for the lab tenant
    lab = [line for line in after.stdout.splitlines() if line.startswith("lab")]
    clinic = [line for line in after.stdout.splitlines() if line.startswith("clinic")]
    assert len(lab) == 2 and all("Hello from aws." in line for line in lab)
    assert len(clinic) == 2
    # as the README shows: the replica's name, not its address
    refused = "refused: 502 upstream failed: llama-3.1-8b/ovh-gra: connection failed"
    assert all(line.endswith(refused) for line in clinic), clinic

    gateway.send_signal(signal.SIGTERM)  # a graceful stop writes every usage record
    assert gateway.wait(timeout=60) == 0
    usage = (tmp_path / doc["metering"]["path"]).read_text().splitlines()
    records = [json.loads(line) for line in usage]
    assert len(records) == 8
    assert {r["provider"] for r in records if r["tenant"] == "clinic"} <= {"ovhcloud", None}
    assert [r["provider"] for r in records if r["tenant"] == "lab"][-2:] == ["aws", "aws"]
