"""Two `archipel server` replicas on one PostgreSQL database, as docs/deploy.md sets them up:
started together on an empty database, one reconciling and both serving the API, the
reconciling one killed with SIGKILL, and a gateway that follows them through a load
balancer.

Real processes, a fresh database per test, loopback only, every wait with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from archipel.backends import LocalBackend

from .test_end_to_end import ARCHIPEL, ROOT, Server, free_port, spec, wait_until

SITES = ROOT / "examples/controlplane/sites.yaml"
HOLDS = "holds the reconciler lease"


class Balancer:
    """A TCP load balancer on loopback: each connection goes to the next backend, in turns,
    skipping a backend that refuses connections (as a balancer's health check would)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports, self.turn = ports, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = self._connect()
            if upstream is None:
                client.close()
                continue
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        for _ in self.ports:
            port = self.ports[self.turn % len(self.ports)]
            self.turn += 1
            with contextlib.suppress(OSError):
                return socket.create_connection(("127.0.0.1", port), timeout=2)
        return None

    def close(self) -> None:
        self.listener.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or is reset: a backend that died)."""
    with a, b, contextlib.suppress(OSError):
        while True:
            ready, _, _ = select.select([a, b], [], [], 30)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)


@pytest.fixture
def replicas(postgres_database: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Two servers on one database and one data directory (the local sites' attempts live
    there), started at the same moment on the empty database."""
    home = tmp_path / "home"
    home.mkdir()
    servers = [Server(home, SITES, db=postgres_database) for _ in range(2)]
    for s in servers:
        s.log = tmp_path / f"server-{s.port}.log"
    starts = [threading.Thread(target=s.start) for s in servers]
    for t in starts:
        t.start()
    for t in starts:
        t.join()
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()
        for site in ("paris", "frankfurt"):
            folder = home / "sites" / site
            if folder.exists():
                LocalBackend(site, folder).kill_all()


def holder(servers: list[Server]) -> Server | None:
    """The replica whose log says it holds the reconciler lease, if exactly one does."""
    holding = [s for s in servers if HOLDS in s.log.read_text()]
    return holding[0] if len(holding) == 1 else None


def attempt_folders(home: Path, run_id: str) -> list[str]:
    """The attempts of ``run_id`` the local sites have ever started, on any site."""
    return sorted(
        p.name for p in home.glob("sites/*/attempts/*") if p.name.startswith(f"{run_id}-")
    )


def test_one_replica_reconciles_both_serve_and_the_other_takes_over_when_it_is_killed(
    replicas: list[Server],
) -> None:
    leader = wait_until(lambda: holder(replicas), 20, "one replica to hold the lease")
    [follower] = [s for s in replicas if s is not leader]
    home = leader.home
    with leader.client() as lc, follower.client() as fc:
        run_id = fc.post("/v1/runs", json=spec(40)).json()["id"]  # through the follower
        wait_until(lambda: lc.get(f"/v1/runs/{run_id}").json()["state"] == "running", 20, "run")
        assert fc.get(f"/v1/runs/{run_id}").json()["state"] == "running"
        assert len(lc.get(f"/v1/runs/{run_id}").json()["attempts"]) == 1
        assert attempt_folders(home, run_id) == [f"{run_id}-a1"]
    assert f"run {run_id}: pending -> placing" in leader.log.read_text()
    assert f"run {run_id}:" not in follower.log.read_text(), "the follower reconciled too"

    leader.kill9()
    wait_until(lambda: HOLDS in follower.log.read_text(), 20, "the follower to take the lease")
    with follower.client() as fc:
        body = wait_until(
            lambda: (r := fc.get(f"/v1/runs/{run_id}").json())["state"] == "succeeded" and r,
            60,
            "the run to finish under the new reconciler",
        )
        assert len(body["attempts"]) == 1, body["attempts"]  # adopted, not relaunched
        assert attempt_folders(home, run_id) == [f"{run_id}-a1"]
        out = fc.get(f"/v1/runs/{run_id}/logs").json()["data"]
        assert out.count("resuming from step") == 1 and "training done" in out

        second = fc.post("/v1/runs", json=spec(3)).json()["id"]
        wait_until(
            lambda: fc.get(f"/v1/runs/{second}").json()["state"] == "succeeded",
            30,
            "a new run to be placed and run by the surviving replica",
        )
        assert attempt_folders(home, second) == [f"{second}-a1"]


def _gateway_config(path: Path, port: int, control_plane: str) -> None:
    from archipel.gateway import hash_key

    path.write_text(
        json.dumps(  # JSON is YAML
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "metering": {"path": str(path.parent / "usage.jsonl")},
                "control_plane": {"url": control_plane, "interval": 0.2, "timeout": 2},
                "health_checks": {"interval": 0.5, "timeout": 1},
                "tenants": {"clinic": {"key_sha256": [hash_key("sk-c")], "data_class": "health"}},
            }
        )
    )


def _replicas_up(port: int) -> set[str]:
    """The replicas the gateway routes to and finds healthy, from its /metrics."""
    try:
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return set()
    return {
        line.split('replica="', 1)[1].split('"', 1)[0]
        for line in metrics.splitlines()
        if line.startswith("archipel_gateway_replica_up{") and line.endswith(" 1.0")
    }


def test_a_gateway_behind_the_balancer_follows_the_surviving_replica(
    replicas: list[Server], tmp_path: Path
) -> None:
    """The gateway reads the routes through the balancer's one address. The reconciling
    replica is killed: requests keep being served, and a change of the routes made on the
    surviving replica reaches the gateway."""
    from openai import OpenAI

    from .test_end_to_end import submit_example_service

    leader = wait_until(lambda: holder(replicas), 20, "one replica to hold the lease")
    [follower] = [s for s in replicas if s is not leader]
    balancer = Balancer([s.port for s in replicas])
    port = free_port()
    config = tmp_path / "gateway.yaml"
    _gateway_config(config, port, f"http://127.0.0.1:{balancer.port}")
    gateway_log = tmp_path / "gateway.log"
    with gateway_log.open("ab") as err:
        gateway = subprocess.Popen(
            [ARCHIPEL, "gateway", "--config", str(config)],
            env={**os.environ, "ARCHIPEL_DATA_DIR": str(leader.home)},  # the shared admin token
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    client = OpenAI(api_key="sk-c", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    try:
        token = (leader.home / "token").read_text().strip()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{balancer.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ) as api:
            [group] = submit_example_service(api)
            wait_until(lambda: len(_replicas_up(port)) == 2, 60, "the gateway to route to both")
            runs = {r["site"]: r["id"] for r in api.get("/v1/runs", params={"group": group}).json()}
        assert set(runs) == {"paris", "frankfurt"}
        messages = [{"role": "user", "content": "hi"}]

        leader.kill9()
        for _ in range(10):  # the control plane's loss is not the services' loss
            answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
            assert (answer.choices[0].message.content or "").startswith("Hello from")

        with follower.client() as fc:  # a change only the survivor can publish
            cancelled = fc.post(f"/v1/runs/{runs['paris']}/cancel").json()
            assert cancelled["state"] == "cancelled"
        wait_until(
            lambda: _replicas_up(port) == {f"llama-3.1-8b/{runs['frankfurt']}"},
            30,
            "the gateway to drop the cancelled replica, read through the balancer",
        )
        answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
        assert answer.choices[0].message.content == "Hello from frankfurt."
    finally:
        client.close()
        gateway.terminate()
        gateway.wait(30)
        balancer.close()
