"""The whole control plane as a user runs it: a real server process, real local
processes, a site that dies, a server that is killed with SIGKILL, and services
that the routes for the gateway lead to.

Bounded: loopback only, a few requests a second, every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from archipel.backends import LocalBackend
from archipel.controlplane import Store

ROOT = Path(__file__).resolve().parents[2]
ARCHIPEL = str(Path(sys.executable).with_name("archipel"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(
        self, home: Path, sites: Path, db: str | None = None, extra: Sequence[str] = ()
    ) -> None:
        self.home, self.sites, self.port, self.db = home, sites, free_port(), db
        self.extra = tuple(extra)  # more of `archipel server`'s options
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    def start(self) -> None:
        env = {**os.environ, "ARCHIPEL_DATA_DIR": str(self.home)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    ARCHIPEL,
                    "server",
                    "--sites",
                    str(self.sites),
                    "--port",
                    str(self.port),
                    "--interval",
                    "0.2",
                    *(["--db", self.db] if self.db else []),
                    *self.extra,
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: self._up(), 30, "the server to answer /healthz")

    def _up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``archipel ARGS`` as a user on this machine runs it against this server."""
        env = {
            **os.environ,
            "ARCHIPEL_DATA_DIR": str(self.home),
            "ARCHIPEL_SERVER": f"http://127.0.0.1:{self.port}",
        }
        return subprocess.run(
            [ARCHIPEL, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def client(self) -> httpx.Client:
        token = (self.home / "token").read_text().strip()
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def spec(steps: int = 40) -> dict[str, Any]:
    return {
        "name": "toy-train",
        "kind": "training",
        "resources": {"accelerators": "cpu:1"},
        "data": {"class": "health"},
        "run": {
            "command": [
                sys.executable,
                str(ROOT / "examples/controlplane/train.py"),
                "--steps",
                str(steps),
                "--step-seconds",
                "0.2",
            ],
            "max_restarts": 3,
        },
    }


def step_of(server: Server, run_id: str) -> int:
    ckpt = server.home / "checkpoints" / run_id / "checkpoint.json"
    try:
        return int(json.loads(ckpt.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_run_survives_the_loss_of_its_site_and_resumes_from_its_checkpoint(
    server: Server,
) -> None:
    with server.client() as c:
        run_id = c.post("/v1/runs", json=spec()).json()["id"]
        wait_until(lambda: c.get(f"/v1/runs/{run_id}").json()["state"] == "running", 20, "running")
        assert c.get(f"/v1/runs/{run_id}").json()["site"] == "paris"
        wait_until(lambda: step_of(server, run_id) >= 3, 20, "a few checkpoints")
        paris = LocalBackend("paris", server.home / "sites" / "paris")
        paris.down("power cut")
        paris.kill_all()
        lost_at = time.monotonic()
        moved = wait_until(
            lambda: (
                (r := c.get(f"/v1/runs/{run_id}").json())["site"] == "frankfurt"
                and r["state"] in ("launching", "running")
                and r
            ),
            20,
            "the run to move to frankfurt",
        )
        recovery = time.monotonic() - lost_at
        assert moved["restarts"] == 1 and moved["blocked_sites"] == ["paris"]
        assert recovery < 10, recovery
        wait_until(lambda: c.get(f"/v1/runs/{run_id}").json()["state"] == "succeeded", 30, "done")
        out = c.get(f"/v1/runs/{run_id}/logs").json()["data"]
        assert "attempt on frankfurt, restart 1: resuming from step" in out
        assert "resuming from step 0" not in out
        history = [e["to_state"] for e in c.get(f"/v1/runs/{run_id}").json()["events"]]
        assert history[-1] == "succeeded" and "recovering" in history


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[Server]:
    """A server on a PostgreSQL database of its own (created and dropped here)."""
    from .conftest import _postgres_store

    stores = _postgres_store()
    store = next(stores)
    s = Server(tmp_path / "home", ROOT / "examples/controlplane/sites.yaml", db=store.url)
    s.home.mkdir()
    s.start()
    try:
        yield s
    finally:
        s.stop()
        for site in ("paris", "frankfurt"):
            folder = s.home / "sites" / site
            if folder.exists():
                LocalBackend(site, folder).kill_all()
        with contextlib.suppress(StopIteration):
            next(stores)


@pytest.mark.parametrize("backing", ["sqlite", "postgresql"])
def test_a_killed_server_adopts_its_runs_and_launches_nothing_twice(
    backing: str, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue("server" if backing == "sqlite" else "pg_server")
    with server.client() as c:
        ids = [c.post("/v1/runs", json=spec(30)).json()["id"] for _ in range(3)]
        wait_until(
            lambda: all(c.get(f"/v1/runs/{i}").json()["state"] == "running" for i in ids),
            30,
            "three running runs",
        )
    server.kill9()
    time.sleep(0.5)
    server.start()
    with server.client() as c:
        wait_until(
            lambda: all(c.get(f"/v1/runs/{i}").json()["state"] == "succeeded" for i in ids),
            60,
            "all runs to finish",
        )
        for i in ids:
            body = c.get(f"/v1/runs/{i}").json()
            assert len(body["attempts"]) == 1, body["attempts"]  # adopted, not relaunched
            out = c.get(f"/v1/runs/{i}/logs").json()["data"]
            assert out.count("resuming from step") == 1


def test_the_cli_submits_follows_lists_shows_and_cancels(server: Server) -> None:
    cli = server.cli
    spec_file = server.home.parent / "job" / "job.yaml"  # its folder is the run's workdir
    spec_file.parent.mkdir()
    spec_file.write_text(json.dumps(spec(200)))  # JSON is YAML
    submitted = cli("run", str(spec_file), "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.split()[0]
    wait_until(lambda: cli("status", run_id).stdout.split()[2] == "running", 20, "running")
    assert run_id in cli("ps").stdout
    assert run_id in [r["id"] for r in json.loads(cli("ps", "--json").stdout)]
    assert json.loads(cli("status", run_id, "--json").stdout)["id"] == run_id
    status = cli("status", run_id).stdout
    assert "attempt 1 on paris" in status and "history:" in status
    wait_until(lambda: "step 1/" in cli("logs", run_id).stdout, 20, "output")
    cancelled = cli("cancel", run_id)
    assert cancelled.stdout.strip().endswith("cancelled")
    viewer = cli("token", "create", "--tenant", "default", "--role", "viewer").stdout.strip()
    refused = cli("run", str(spec_file), "--token", viewer)
    assert refused.returncode == 2 and "403" in refused.stderr


def test_the_cli_follows_every_replica_of_a_service(server: Server) -> None:
    submitted = server.cli("run", "examples/controlplane/service.yaml")
    assert submitted.returncode == 0, submitted.stderr
    lines = submitted.stdout.splitlines()
    assert [line.split()[1:] for line in lines[:2]] == [
        ["llama-8b-1", "submitted"],
        ["llama-8b-2", "submitted"],
    ]
    for name, site in (("llama-8b-1", "paris"), ("llama-8b-2", "frankfurt")):
        assert any(f"{name}" in line and f"placed on {site}" in line for line in lines), lines
        assert any(line.split()[:2] == [name, "running"] for line in lines), lines

    with server.client() as c:
        group = c.get(f"/v1/runs/{lines[0].split()[0]}").json()["group"]
    cancelled = server.cli("cancel", group)  # the whole service at once
    assert cancelled.returncode == 0, cancelled.stderr
    assert sorted(line.split()[1:] for line in cancelled.stdout.splitlines()) == [
        ["llama-8b-1", "cancelled"],
        ["llama-8b-2", "cancelled"],
    ]
    assert server.cli("cancel", "g-000000000000").returncode == 2


def fake_upstream(name: str) -> list[str]:
    """The fake model server, listening on the port the control plane gives it."""
    python = shlex.quote(sys.executable)
    return [
        "/bin/sh",
        "-c",
        f'exec {python} -m archipel.gateway.fake_upstream --port "$ARCHIPEL_PORT" --name {name}',
    ]


def answers(url: str, key: str | None = None) -> bool:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_running_service_is_routed_and_answers_at_its_base_url(server: Server) -> None:
    service = {
        "name": "llama",
        "kind": "inference",
        "resources": {"accelerators": "cpu:1"},
        "data": {"class": "health"},
        "run": {"command": fake_upstream("svc")},
        "serve": {"model": "llama-3.1-8b"},
    }
    store = Store(f"sqlite:///{server.home / 'state.db'}")
    other = {"Authorization": f"Bearer {store.create_token('globex', 'viewer')}"}
    store.close()
    with server.client() as c:
        run_id = c.post("/v1/runs", json=service).json()["id"]
        models = wait_until(lambda: c.get("/v1/routes").json()["models"], 20, "a route")
        [replica] = models["llama-3.1-8b"]["replicas"]
        assert replica["name"] == run_id
        assert (replica["provider"], replica["region"], replica["country"]) == (
            "scaleway",
            "fr-par",
            "FR",
        )
        assert replica["base_url"].startswith("http://127.0.0.1:")
        health = replica["base_url"] + "/models"
        wait_until(lambda: answers(health, replica["key"]), 20, "the service to answer")
        assert not answers(health)  # the service checks the key it was given
        url = f"http://127.0.0.1:{server.port}/v1/routes"
        assert httpx.get(url, headers=other).json() == {"tenant": "globex", "models": {}}
        etag = c.get("/v1/routes").headers["etag"]
        assert c.get("/v1/routes", headers={"If-None-Match": etag}).status_code == 304
        c.post(f"/v1/runs/{run_id}/cancel")
        nothing = {"tenant": "default", "models": {}}
        assert c.get("/v1/routes", headers={"If-None-Match": etag}).json() == nothing


def submit_example_service(c: httpx.Client) -> list[str]:
    """Submit every document of the example service file; the group ids."""
    from archipel.cli._config import load_workloads

    groups = []
    for w in load_workloads(ROOT / "examples/controlplane/service.yaml"):
        body = w.model_dump(mode="json", by_alias=True, exclude_none=True)
        created = c.post("/v1/runs", json=body)
        assert created.status_code == 201, created.text
        groups.append(created.json()["group"])
    return groups


def test_the_example_service_runs_one_replica_per_provider(server: Server) -> None:
    with server.client() as c:
        [group] = submit_example_service(c)
        replicas = c.get("/v1/runs", params={"group": group}).json()
        assert [r["name"] for r in replicas] == ["llama-8b-1", "llama-8b-2"]

        def two_replicas() -> list[dict[str, Any]] | None:
            model = c.get("/v1/routes").json()["models"].get("llama-3.1-8b")
            return model["replicas"] if model and len(model["replicas"]) == 2 else None

        replicas = wait_until(two_replicas, 30, "two replicas")
        assert {(r["provider"], r["country"]) for r in replicas} == {
            ("scaleway", "FR"),
            ("stackit", "DE"),
        }
        for r in replicas:
            url = r["base_url"] + r["health_path"]
            wait_until(lambda url=url, key=r["key"]: answers(url, key), 20, r["name"])


def test_services_the_control_plane_runs_are_served_through_the_gateway(
    server: Server, tmp_path: Path
) -> None:
    """The example service on two sites, the gateway following GET /v1/routes, the official
    openai client in front: one replica is cancelled mid-traffic and no request fails."""
    from openai import OpenAI

    from archipel.gateway import hash_key

    with server.client() as c:
        [group] = submit_example_service(c)

        def placed() -> dict[str, str] | None:
            runs = c.get("/v1/runs", params={"group": group}).json()
            sites = {r["site"]: r["id"] for r in runs if r["state"] in ("launching", "running")}
            return sites if len(sites) == 2 else None

        on_site = wait_until(placed, 30, "both replicas to be placed")
    assert set(on_site) == {"paris", "frankfurt"}

    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "metering": {"path": str(tmp_path / "usage.jsonl")},
                "control_plane": {
                    "url": f"http://127.0.0.1:{server.port}",
                    "interval": 0.2,
                },
                "health_checks": {"interval": 0.5, "timeout": 1},
                "tenants": {"clinic": {"key_sha256": [hash_key("sk-c")], "data_class": "health"}},
            }
        )
    )
    gateway = subprocess.Popen(
        [ARCHIPEL, "gateway", "--config", str(config)],
        # no token in the config: the gateway finds the server's admin token, as `run` does
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(server.home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = OpenAI(api_key="sk-c", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    try:

        def both_replicas_up() -> bool:
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
            except httpx.TransportError:
                return False
            return (
                sum(
                    line.startswith("archipel_gateway_replica_up{") and line.endswith(" 1.0")
                    for line in metrics.splitlines()
                )
                == 2
            )

        cancelled = f'replica="llama-3.1-8b/{on_site["paris"]}"'

        def routed(replica: str) -> bool:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            return any(
                line.startswith("archipel_gateway_replica_up{") and replica in line
                for line in metrics.splitlines()
            )

        wait_until(both_replicas_up, 60, "the gateway to route to both services")
        assert routed(cancelled)
        messages = [{"role": "user", "content": "hi"}]
        answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
        assert (answer.choices[0].message.content or "").startswith("Hello from")
        chunks = client.chat.completions.create(
            model="llama-3.1-8b", messages=messages, stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)

        with server.client() as c:
            c.post(f"/v1/runs/{on_site['paris']}/cancel")
        served = set()
        for _ in range(30):  # across the cancellation: failover, then new routes
            answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
            served.add(answer.choices[0].message.content)
            time.sleep(0.05)
        assert "Hello from frankfurt." in served  # the replica left running
        wait_until(
            lambda: not routed(cancelled),
            30,
            "the cancelled replica to leave the gateway's routes",
        )
        answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
        assert answer.choices[0].message.content == "Hello from frankfurt."
    finally:
        client.close()
        gateway.terminate()
        gateway.wait(30)


def test_a_gateway_never_routes_to_another_tenants_service_nor_sends_it_its_key(
    server: Server, tmp_path: Path
) -> None:
    """A submitter of another tenant runs a service of the very model the gateway serves, in
    the EU. The gateway follows the control plane with the admin token of its own tenant and
    has an upstream key for its services: none of its tenants' requests reaches that service,
    and the gateway's key never does (the intruder answers only requests that bear it)."""
    from openai import OpenAI

    from archipel.gateway import hash_key

    gateway_key = "the-gateway-upstream-key"
    store = Store(f"sqlite:///{server.home / 'state.db'}")
    intruder = {"Authorization": f"Bearer {store.create_token('globex', 'submitter')}"}
    store.close()
    python = shlex.quote(sys.executable)
    mimic = f'exec {python} -m archipel.gateway.fake_upstream --port "$ARCHIPEL_PORT" '
    base = {
        "kind": "inference",
        "resources": {"accelerators": "cpu:1"},
        "data": {"class": "health"},
        "serve": {"model": "llama-3.1-8b"},
    }
    ours_spec = {
        **base,
        "name": "ours",
        "run": {"command": ["/bin/sh", "-c", mimic + "--name ours"]},
    }
    theirs_spec = {
        **base,
        "name": "theirs",
        "run": {"command": ["/bin/sh", "-c", mimic + f"--name intruder --key {gateway_key}"]},
    }
    api = f"http://127.0.0.1:{server.port}"
    with server.client() as c:
        ours = c.post("/v1/runs", json=ours_spec).json()["id"]
        theirs = httpx.post(f"{api}/v1/runs", json=theirs_spec, headers=intruder, timeout=10)
        assert theirs.status_code == 201, theirs.text
        theirs_id = theirs.json()["id"]

        def theirs_listens() -> bool:
            routes = httpx.get(f"{api}/v1/routes", headers=intruder, timeout=5).json()["models"]
            return any(
                r["name"] == theirs_id and answers(r["base_url"] + "/models", gateway_key)
                for m in routes.values()
                for r in m["replicas"]
            )

        wait_until(theirs_listens, 30, "the other tenant's service to run and answer")

    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "metering": {"path": str(tmp_path / "usage.jsonl")},
                "control_plane": {
                    "url": api,
                    "interval": 0.2,
                    "key_env": "GATEWAY_UPSTREAM_KEY",
                },
                "health_checks": {"interval": 0.5, "timeout": 1},
                "tenants": {
                    "clinic": {"key_sha256": [hash_key("sk-c")], "data_class": "health"},
                    "lab": {"key_sha256": [hash_key("sk-l")], "data_class": "public"},
                },
            }
        )
    )
    env = {**os.environ, "ARCHIPEL_DATA_DIR": str(server.home), "GATEWAY_UPSTREAM_KEY": gateway_key}
    gateway = subprocess.Popen(
        [ARCHIPEL, "gateway", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def metrics() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                return ""

        def polls() -> int:
            return sum(
                int(float(line.rsplit(" ", 1)[1]))
                for line in metrics().splitlines()
                if line.startswith("archipel_gateway_control_plane_polls_total{")
            )

        wait_until(lambda: f'replica="llama-3.1-8b/{ours}"' in metrics(), 60, "our service")
        seen = polls()
        wait_until(lambda: polls() >= seen + 3, 30, "a few more polls of the routes")
        messages = [{"role": "user", "content": "hi"}]
        answered = set()
        for key in ("sk-c", "sk-l"):
            with OpenAI(
                api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0
            ) as client:
                for _ in range(12):
                    answer = client.chat.completions.create(model="llama-3.1-8b", messages=messages)
                    answered.add(answer.choices[0].message.content)
        assert answered == {"Hello from ours."}
        assert theirs_id not in metrics()  # not even in the route table
    finally:
        gateway.terminate()
        gateway.wait(30)
