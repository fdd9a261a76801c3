"""Run one console block's commands and print what happened, as JSON on stdout.

    python tests/docs/run_block.py SPEC.json [--loopback]

The doc tests start this script once per block, inside a network namespace of
its own when the machine allows one (``unshare -rn``; ``--loopback`` brings
its loopback interface up), so that the ports the docs name (8080, 8470, ...)
are the block's alone. It uses the standard library only.

SPEC holds ``root`` (the block's temporary folder), ``cwd``, ``env``, ``timeout`` (seconds per command), ``ready``
(seconds a server has to start listening), ``logs`` (a folder for the
background jobs' output) and ``commands``: each with ``line``, ``run`` (the
shell text), ``status`` (the expected exit status), ``background``, ``port``
(a background job's) and ``kills`` (``kill %N``: the jobs to stop). The first
command whose exit status is not the expected one ends the block. Background
jobs are stopped at the end, each by its process group, SIGTERM then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GRACE = 15.0  # seconds a stopped job has to exit before SIGKILL


def loopback_up() -> None:
    """Bring ``lo`` up: a new network namespace starts with it down."""
    import fcntl

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Block:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.jobs: list[tuple[int, subprocess.Popen[bytes], Path]] = []
        self.results: list[dict[str, Any]] = []

    def run(self) -> dict[str, Any]:
        try:
            for command in self.spec["commands"]:
                result = self.one(command)
                self.results.append(result)
                if result["status"] != command["status"] or result.get("error"):
                    break
        finally:
            for _, job, _ in self.jobs:
                stop(job)
            reap(Path(self.spec["root"]))
        logs = [
            {"line": line, "log": log.read_text(errors="replace")} for line, _, log in self.jobs
        ]
        return {"results": self.results, "jobs": logs}

    def one(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["kills"]:
            return self.kill(command)
        if command["background"]:
            return self.start(command)
        return self.foreground(command)

    def foreground(self, command: dict[str, Any]) -> dict[str, Any]:
        proc = subprocess.Popen(
            ["bash", "-c", command["run"]], cwd=self.spec["cwd"], env=self.spec["env"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=self.spec["timeout"])
        except subprocess.TimeoutExpired:
            stop(proc)
            out, _ = proc.communicate()
            error = f"still running after {self.spec['timeout']} s; stopped"
            return self.result(command, proc.returncode, out, error)
        return self.result(command, proc.returncode, out)

    def start(self, command: dict[str, Any]) -> dict[str, Any]:
        log = Path(self.spec["logs"]) / f"job-{command['line']}.log"
        with log.open("wb") as sink:
            job = subprocess.Popen(
                ["bash", "-c", command["run"]], cwd=self.spec["cwd"], env=self.spec["env"],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.jobs.append((command["line"], job, log))
        deadline = time.monotonic() + self.spec["ready"]
        while not listening(command["port"]):
            if job.poll() is not None:
                return self.result(command, job.returncode, b"", "exited before it listened")
            if time.monotonic() > deadline:
                error = f"not listening on port {command['port']} after {self.spec['ready']} s"
                return self.result(command, 0, b"", error)
            time.sleep(0.1)
        return self.result(command, 0, b"")

    def kill(self, command: dict[str, Any]) -> dict[str, Any]:
        """``kill %N``: SIGTERM to the job's process group, then wait for it to go."""
        for n in command["kills"]:
            _, job, _ = self.jobs[n - 1]
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGTERM)
        for n in command["kills"]:
            try:
                self.jobs[n - 1][1].wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                return self.result(command, 1, b"", f"job %{n} still running {GRACE} s after kill")
        return self.result(command, 0, b"")

    @staticmethod
    def result(
        command: dict[str, Any], status: int, output: bytes, error: str = ""
    ) -> dict[str, Any]:
        text = output.decode(errors="replace")
        return {"line": command["line"], "status": status, "output": text, "error": error}


def stop(job: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the job's process group, SIGKILL if it is still there after GRACE."""
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, GRACE)):
        try:
            os.killpg(job.pid, sig)
        except ProcessLookupError:
            return
        try:
            job.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def reap(root: Path) -> None:
    """SIGKILL what the block left running: processes whose working directory is in ``root``.

    A server's runs outlive it by design (a restarted server adopts them); in a
    namespace of its own the block's end stops them anyway, and elsewhere this does.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:
            continue
        if cwd.is_relative_to(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if "--loopback" in sys.argv[2:]:
        loopback_up()
    json.dump(Block(spec).run(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
