"""Every console block of README.md and docs/*.md, run in a fresh copy of the checkout.

A block runs in a temporary copy of the checkout's files (the tracked ones and
the new ones git does not ignore), with ``.venv`` pointing at the virtualenv
that runs the tests, ``.venv/bin`` first on PATH, a HOME of its own and no
ARCHIPEL_* variable: what a newcomer who just ran ``make`` would have. When
the machine allows it the block gets its own network and process namespaces,
so the ports the docs name are free and nothing it started survives it; where
it does not, blocks that start servers take turns and check that their ports
are free. The convention is in blocks.py and, for writers, docs/contributing.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from .blocks import Block, Command, commands, doc_blocks, missing, problems, runnable_blocks

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_block.py")
COMMAND_TIMEOUT = 120  # seconds per command
READY_TIMEOUT = 60  # seconds a server has to listen
# its own network (the docs' ports) and pids (what it started ends with it, --kill-child)
NAMESPACES = [
    "unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child",
    "--mount-proc",
]  # fmt: skip


def test_every_fenced_block_says_what_it_is() -> None:
    found = [f"{b.where}: {message}" for b in doc_blocks(REPO) for message in problems(b)]
    assert not found, (
        "fenced blocks that break the convention (docs/contributing.md):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, id=b.where, marks=[pytest.mark.slow] if b.ports else [])
        for b in runnable_blocks(REPO)
    ],
)
def test_console_block(block: Block, tmp_path: Path) -> None:
    failures = check(block, tmp_path)
    assert not failures, "\n\n".join(failures)


def check(block: Block, tmp: Path) -> list[str]:
    """Run a console block in ``tmp``; what differs from what it shows (nothing: it holds)."""
    found = commands(block)
    with _server_turn(block):
        outcome = _run(block, found, tmp)
    return _compare(block, found, outcome)


def _run(block: Block, found: list[Command], tmp: Path) -> dict[str, Any]:
    checkout, home, logs = tmp / "checkout", tmp / "home", tmp / "logs"
    _copy_checkout(checkout)
    home.mkdir(mode=0o700)
    logs.mkdir()
    spec = {
        "root": str(tmp), "cwd": str(checkout), "env": _environment(checkout, home),
        "timeout": COMMAND_TIMEOUT, "ready": READY_TIMEOUT, "logs": str(logs),
        "commands": [_spec(block, c) for c in found],
    }  # fmt: skip
    (tmp / "spec.json").write_text(json.dumps(spec))
    if any(c.text.startswith("make") for c in found):
        _check_make_leaves_the_virtualenv_alone(checkout)
    argv = [sys.executable, str(RUNNER), str(tmp / "spec.json")]
    if namespaces():
        argv = [*NAMESPACES, *argv, "--loopback"]
    bound = len(found) * COMMAND_TIMEOUT + len(block.ports) * READY_TIMEOUT + 60
    done = subprocess.run(argv, capture_output=True, text=True, timeout=bound, check=False)
    assert done.returncode == 0, f"{block.where}: the block runner failed:\n{done.stderr}"
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


def _spec(block: Block, command: Command) -> dict[str, Any]:
    jobs = [c.line for c in commands(block) if c.background]
    port = block.ports[jobs.index(command.line)] if command.background else None
    return {
        "line": command.line, "run": command.to_run(), "status": command.status,
        "background": command.background, "port": port, "kills": list(command.kills),
    }  # fmt: skip


def _compare(block: Block, found: list[Command], outcome: dict[str, Any]) -> list[str]:
    by_line = {c.line: c for c in found}
    failures = []
    for result in outcome["results"]:
        command = by_line[result["line"]]
        absent = missing(command.expected, result["output"])
        if result["error"] or result["status"] != command.status or absent:
            failures.append(_explain(block, command, result, absent))
    ran = {r["line"] for r in outcome["results"]}
    if failures and outcome["jobs"]:
        failures.extend(
            f"background job of line {j['line']} wrote:\n{j['log']}" for j in outcome["jobs"]
        )
    not_run = [c for c in found if c.line not in ran]
    if not_run:
        failures.append(f"not run after that: {', '.join(str(c.line) for c in not_run)}")
    return failures


def _explain(block: Block, command: Command, result: dict[str, Any], absent: list[str]) -> str:
    lines = [f"{block.path}:{command.line}: $ {command.text}"]
    if result["error"]:
        lines.append(f"  {result['error']}")
    if result["status"] != command.status:
        lines.append(f"  exit status {result['status']}, expected {command.status}")
    for key in command.expected:
        lines.append(f"  {'MISSING ' if key in absent else 'found   '} {key}")
    lines.append("  its output:")
    lines.extend(f"  | {line}" for line in result["output"].splitlines())
    return "\n".join(lines)


def _environment(checkout: Path, home: Path) -> dict[str, str]:
    drop = ("ARCHIPEL_", "XDG_", "VIRTUAL_ENV", "PYTHON", "COLUMNS", "LINES", "MAKEFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HOME"] = str(home)
    env["PATH"] = f"{checkout / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def _copy_checkout(target: Path) -> None:
    """The checkout's files as they are now (tracked and new), and a link to the virtualenv.

    A copy keeps its files' times, so make sees the link's virtualenv as up to
    date exactly when the checkout's own is, and never reinstalls it.
    """
    git = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=False,
    )  # fmt: skip
    assert git.returncode == 0, f"the doc tests copy a git checkout's files: {git.stderr!r}"
    listed = git.stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix))


def _check_make_leaves_the_virtualenv_alone(checkout: Path) -> None:
    """``make`` in the copy must not rebuild the linked virtualenv (it is the one testing)."""
    stale = subprocess.run(
        ["make", "-q", ".venv/bin/.installed"], cwd=checkout, capture_output=True, check=False
    )
    assert stale.returncode == 0, (
        f"{sys.prefix} is not what `make` installs from pyproject.toml and requirements.lock "
        "(or is older than they are): run `make .venv/bin/.installed`, then the tests from .venv"
    )


@cache
def namespaces() -> bool:
    """Whether this machine lets an unprivileged process have its own network and pids."""
    try:
        done = subprocess.run([*NAMESPACES, "true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextmanager
def _server_turn(block: Block) -> Iterator[None]:
    """Without namespaces, blocks with servers take turns, on ports that must be free."""
    if not block.ports or namespaces():
        yield
        return
    with (Path(tempfile.gettempdir()) / "archipel-doctest-servers.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = [port for port in block.ports if _in_use(port)]
        assert not taken, f"{block.where}: port(s) {taken} in use; the block's servers need them"
        yield


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
