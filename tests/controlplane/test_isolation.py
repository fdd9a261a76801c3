"""What separates attempts from the server and from each other (docs/security.md).

The server's token, database and folders are its own (0600 files, 0700 folders),
whether it creates them or finds them left open. A local site with ``run_as``
runs its attempts as that unprivileged user: tested for real, as root, with a
throwaway user (skipped with a message when not root, failed under CI).
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archipel.backends import LocalBackend
from archipel.controlplane import Store, build_sites, parse_sites
from archipel.core import InputError

from .test_end_to_end import Server, wait_until

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def site(**extra: Any) -> dict[str, Any]:
    return {"name": "lab", "backend": "local", "provider": "scaleway", "country": "FR", **extra}


# --- the sites file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            site(backend="slurm", partition="eu-fr", run_as="lab"),
            "run_as applies to local sites only",
            id="run_as on a Slurm site",
        ),
        pytest.param(site(run_as="Lab Users"), "run_as", id="not a user name"),
    ],
)
def test_run_as_is_refused_where_it_cannot_apply(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_sites({"sites": [spec]}, "sites.yaml")


def test_run_as_naming_a_missing_user_is_refused_at_start(tmp_path: Path) -> None:
    specs = parse_sites({"sites": [site(run_as="no-such-user-9b2e")]}, "sites.yaml")
    with pytest.raises(InputError, match=r"site lab: run_as: .*useradd"):
        build_sites(specs, tmp_path)


# --- the store's file -------------------------------------------------------------------


@pytest.mark.parametrize(
    "found",
    [
        pytest.param(None, id="created"),
        pytest.param(0o644, id="found readable by everyone"),
        pytest.param(0o640, id="found readable by its group"),
    ],
)
def test_the_sqlite_file_is_private_to_the_servers_user(
    tmp_path: Path, found: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    if found is not None:
        path.touch()
        path.chmod(found)
    with caplog.at_level(logging.WARNING, "archipel.store"):
        store = Store(f"sqlite:///{path}")
        store.migrate()
        store.close()
    assert mode(path) == 0o600
    assert ("readable by others" in caplog.text) == (found is not None)


# --- the server's data directory --------------------------------------------------------


def _left_open(home: Path) -> None:
    """A data directory as an older version (umask 022) left it."""
    home.chmod(0o755)
    (home / "token").write_text("arch_old.token\n")
    (home / "token").chmod(0o644)
    (home / "state.db").touch()
    (home / "state.db").chmod(0o644)


@pytest.mark.parametrize(
    ("prepare", "warned"),
    [
        pytest.param(lambda home: None, False, id="a new data directory"),
        pytest.param(_left_open, True, id="one an older version left open"),
    ],
)
def test_the_server_keeps_its_token_database_and_folders_to_itself(
    tmp_path: Path, prepare: Callable[[Path], None], warned: bool
) -> None:
    server = Server(tmp_path / "home", ROOT / "examples/controlplane/sites.yaml")
    server.home.mkdir()
    prepare(server.home)
    server.start()
    try:
        files = {p: mode(server.home / p) for p in ("token", "state.db")}
        folders = {p: mode(server.home / p) for p in (".", "sites", "checkpoints")}
    finally:
        server.stop()
    assert files == {"token": 0o600, "state.db": 0o600}
    assert folders == {".": 0o700, "sites": 0o700, "checkpoints": 0o700}
    log = server.log.read_text()
    assert ("token was readable by others" in log) == warned


def test_a_shared_folder_is_refused_as_the_data_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    server = Server(shared, ROOT / "examples/controlplane/sites.yaml")
    done = server.cli("server", "--port", str(server.port))
    assert done.returncode == 2
    assert "shared with other users" in done.stderr
    assert mode(shared) == 0o1777  # left as it was


# --- run_as, for real ----------------------------------------------------------------------


def _job(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerators": "cpu:1"},
        "run": {"command": command, "max_restarts": 0},
    }


def test_an_attempt_run_as_a_site_user_reads_no_server_file_secret_or_other_output(
    make_user: Callable[[], str], passable_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user()
    sites = passable_tmp / "sites.yaml"
    sites.write_text(json.dumps({"sites": [site(run_as=user, slots=2)]}))  # JSON is YAML
    # secrets the server's environment holds; the attempt must not see them
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-server-secret")
    monkeypatch.setenv("ARCHIPEL_TOKEN", "arch_server.token")
    server = Server(passable_tmp / "home", sites)
    server.home.mkdir()
    server.start()
    try:
        with server.client() as c:

            def finished(run_id: str) -> dict[str, Any] | None:
                body: dict[str, Any] = c.get(f"/v1/runs/{run_id}").json()
                return body if body["state"] in ("succeeded", "failed") else None

            other = c.post("/v1/runs", json=_job("other", ["echo", "other-output"])).json()
            done = wait_until(lambda: finished(other["id"]), 30, "the first run")
            other_output = (
                server.home / "sites" / "lab" / "attempts" / done["attempts"][-1]["id"]
            ) / "output.log"
            targets = [server.home / "token", server.home / "state.db", other_output]
            script = (
                'id -un; echo "key=${UPSTREAM_API_KEY-<unset>}"; '
                'echo "token=${ARCHIPEL_TOKEN-<unset>}"; for f in "$@"; do '
                'if cat "$f" >/dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi; '
                "done"
            )
            command = ["/bin/sh", "-c", script, "snoop", *map(str, targets)]
            snoop = c.post("/v1/runs", json=_job("snoop", command)).json()
            assert wait_until(lambda: finished(snoop["id"]), 30, "the snoop")["state"] == (
                "succeeded"
            )
            lines = c.get(f"/v1/runs/{snoop['id']}/logs").json()["data"].splitlines()
            other_log = c.get(f"/v1/runs/{other['id']}/logs").json()["data"]
    finally:
        server.stop()
        LocalBackend("lab", server.home / "sites" / "lab").kill_all()
    assert lines == [
        user,
        "key=<unset>",
        "token=<unset>",
        *(f"denied {target}" for target in targets),
    ]
    assert other_log == "other-output\n"  # the server reads what its attempts cannot
