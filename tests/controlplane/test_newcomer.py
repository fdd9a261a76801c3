"""What a new user meets first: the README's control-plane walkthrough run as written,
exit statuses that follow a run's end, attempts whose state is true after a cancel,
one clear line when a port is taken, and workdir archives that cannot escape.

Bounded: loopback only, every wait has a deadline.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from archipel.backends._files import unpack
from archipel.cli._cp import pack_workdir
from archipel.controlplane import parse_sites
from archipel.controlplane._placement import unoffered
from archipel.controlplane._workdirs import archive_problem
from archipel.core import parse_workload

from .test_end_to_end import ARCHIPEL, ROOT, Server, wait_until


def test_the_readme_training_example_runs_as_written_from_the_repository(
    server: Server,
) -> None:
    # README: `archipel run examples/controlplane/train.yaml`, typed at the repository's root
    done = server.cli("run", "examples/controlplane/train.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[0]
    assert done.stdout.splitlines()[-1].split()[0] == "succeeded"
    status = server.cli("status", run_id).stdout
    assert "attempt 1 on paris: succeeded (exit 0)" in status


def _job(folder: Path, command: list[str]) -> Path:
    folder.mkdir()
    spec = {
        "name": "job",
        "kind": "batch",
        "resources": {"accelerators": "cpu:1"},
        "data": {"class": "public"},
        "run": {"command": command, "max_restarts": 0},
    }
    (folder / "job.yaml").write_text(json.dumps(spec))
    return folder / "job.yaml"


def test_a_failed_run_exits_1_and_ps_says_why(server: Server) -> None:
    spec = _job(server.home.parent / "failing", ["sh", "-c", "exit 3"])
    done = server.cli("run", str(spec))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = json.loads(server.cli("ps", "--json").stdout)
    assert rows[-1]["state"] == "failed"
    assert "exited with status 3" in (rows[-1]["message"] or "")


def test_a_cancelled_run_exits_4_and_its_attempt_is_cancelled(server: Server) -> None:
    spec = _job(server.home.parent / "long", ["sleep", "60"])
    env = {"ARCHIPEL_DATA_DIR": str(server.home), "ARCHIPEL_SERVER": _url(server)}
    follower = subprocess.Popen(
        [ARCHIPEL, "run", str(spec)],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = wait_until(
            lambda: next(
                (
                    r["id"]
                    for r in json.loads(server.cli("ps", "--json").stdout)
                    if r["state"] == "running"
                ),
                None,
            ),
            30,
            "the run to be running",
        )
        assert server.cli("cancel", run_id).returncode == 0
        assert follower.wait(30) == 4
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
    status = server.cli("status", run_id).stdout
    assert "attempt 1 on paris: cancelled" in status, status


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield int(taken.getsockname()[1])


def _gateway_config(folder: Path, port: int) -> Path:
    config = folder / "gateway.yaml"
    text = (ROOT / "examples/gateway/gateway.yaml").read_text()
    config.write_text(text.replace("port: 8080", f"port: {port}"))
    return config


@pytest.mark.parametrize("command", ["server", "gateway"])
def test_a_busy_port_is_one_line_and_exit_2(command: str, busy_port: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    args = (
        ["server", "--port", str(busy_port)]
        if command == "server"
        else ["gateway", "--config", str(_gateway_config(tmp_path, busy_port))]
    )
    done = subprocess.run(
        [ARCHIPEL, *args],
        env={**os.environ, "ARCHIPEL_DATA_DIR": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: port {busy_port} on 127.0.0.1 is in use; pick another with --port"]
    assert "Traceback" not in done.stderr
    assert " on http://" not in done.stdout + done.stderr  # never "listening" when it is not


def _archive(*members: tuple[str, bytes | str]) -> bytes:
    """A .tar.gz of regular files (bytes) and symbolic links (str: the target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_archive(("/etc/cron.d/x", b"")), id="absolute-path"),
        pytest.param(_archive(("../../escape", b"")), id="dot-dot"),
        pytest.param(_archive(("link", "/etc/passwd")), id="link-out"),
        pytest.param(b"not a tar.gz", id="not-an-archive"),
    ],
)
def test_a_workdir_archive_that_could_escape_is_refused(body: bytes, tmp_path: Path) -> None:
    assert archive_problem(body, 1 << 20) is not None
    archive = tmp_path / "w.tar.gz"
    archive.write_bytes(body)
    with pytest.raises(ValueError, match="workdir archive"):
        unpack(archive, tmp_path / "work")
    assert sorted(p.name for p in tmp_path.iterdir()) in (["w.tar.gz"], ["w.tar.gz", "work"])


def test_a_workdir_is_packed_without_version_control_and_unpacked_as_it_was(
    tmp_path: Path,
) -> None:
    source = tmp_path / "project"
    (source / "pkg").mkdir(parents=True)
    (source / ".git").mkdir()
    (source / "train.py").write_text("print('hi')\n")
    (source / "pkg" / "data.txt").write_text("data\n")
    (source / ".git" / "HEAD").write_text("ref\n")
    (source / "outside").symlink_to("/etc/passwd")
    packed = pack_workdir(source)
    assert packed == pack_workdir(source)  # the same files, the same hash
    assert archive_problem(packed, 1 << 20) is None
    archive = tmp_path / "w.tar.gz"
    archive.write_bytes(packed)
    unpack(archive, tmp_path / "work")
    got = sorted(str(p.relative_to(tmp_path / "work")) for p in (tmp_path / "work").rglob("*"))
    assert got == ["pkg", "pkg/data.txt", "train.py"]


def test_no_site_offering_the_accelerator_lists_what_the_sites_offer() -> None:
    import yaml

    sites = parse_sites(yaml.safe_load((ROOT / "examples/controlplane/sites.yaml").read_text()))
    workload = parse_workload(
        {
            "name": "big",
            "kind": "training",
            "resources": {"accelerators": "H100:8"},
            "run": {"command": ["true"]},
        }
    )
    assert unoffered(workload, sites) == (
        "no site offers H100; the sites offer: cpu:1 (paris, frankfurt)"
    )


def test_the_api_pages_that_need_a_cdn_are_not_served(server: Server) -> None:
    with server.client() as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 200


def _url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"
