"""A run's checkpoint on an EC2 site, against the emulator: out to S3 at launch, kept in
sync by the boot script, and home again when the attempt ends, before its end is told."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.aws_emulator import (
    BUCKET,
    Emulated,
    client_error,
)

from archipel.backends import AttemptState, LaunchRequest
from archipel.backends._ec2_script import WORKDIR_FAILED, Staging, user_data

from .contract import new_id

PREFIX = "stage/checkpoints"


def request(attempt: str, run: str, checkpoint: Path) -> LaunchRequest:
    env = {"ARCHIPEL_RUN_ID": run, "ARCHIPEL_CHECKPOINT_DIR": str(checkpoint)}
    return LaunchRequest(attempt, ["python", "train.py"], env)


def s3_files(site: Emulated, run: str) -> dict[str, bytes]:
    s3 = site.s3.client
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{run}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"{PREFIX}/{run}/"): s3.get_object(Bucket=BUCKET, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }


def local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_launch_mirrors_the_runs_checkpoint_to_its_prefix(site: Emulated, tmp_path: Path) -> None:
    run, home = new_id(), tmp_path / "ckpt"
    (home / "sub").mkdir(parents=True)
    (home / "step").write_text("7\n")
    (home / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    site.s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/stale", Body=b"old")
    assert site.backend.launch(request(new_id(), run, home)).ok
    assert s3_files(site, run) == {"step": b"7\n", "sub/weights.bin": b"\x00\x01"}


def test_an_interrupted_attempt_brings_its_checkpoint_home_before_its_end_is_told(
    site: Emulated, tmp_path: Path
) -> None:
    run, home, a = new_id(), tmp_path / "ckpt", new_id()
    home.mkdir()
    (home / "old").write_text("from an attempt before")
    assert site.backend.launch(request(a, run, home)).ok
    # what the instance's last sync leaves: a new step, and the old file gone (--delete)
    s3 = site.s3.client
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/step", Body=b"12\n")
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/old")
    site.interrupt()
    seen = site.backend.observe([a])[a]
    assert seen.state is AttemptState.PREEMPTED
    assert local_files(home) == {"step": b"12\n"}
    calls = site.s3.calls["get_paginator"]
    assert site.backend.observe([a])[a].state is AttemptState.PREEMPTED
    assert site.s3.calls["get_paginator"] == calls  # brought home once


def test_a_running_attempt_leaves_the_servers_copy_alone(site: Emulated, tmp_path: Path) -> None:
    run, home, a = new_id(), tmp_path / "ckpt", new_id()
    assert site.backend.launch(request(a, run, home)).ok
    site.s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/step", Body=b"3\n")
    assert site.backend.observe([a])[a].state is AttemptState.RUNNING
    assert local_files(home) == {}


def test_while_s3_cannot_be_read_the_end_stays_unobserved(site: Emulated, tmp_path: Path) -> None:
    """The reconciler relaunches on the end it is told: it must not be told before the
    checkpoint is home."""
    run, home, a = new_id(), tmp_path / "ckpt", new_id()
    assert site.backend.launch(request(a, run, home)).ok
    site.s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/step", Body=b"5\n")
    site.interrupt()
    site.s3.fail("get_paginator", client_error("InternalError", "ListObjectsV2"))
    first = site.backend.observe([a])[a]
    assert first.state is AttemptState.UNOBSERVED
    assert "cannot bring the checkpoint back" in (first.reason or "")
    assert site.backend.observe([a])[a].state is AttemptState.PREEMPTED
    assert local_files(home) == {"step": b"5\n"}


def test_a_key_that_would_leave_the_folder_is_skipped(site: Emulated, tmp_path: Path) -> None:
    run, home, a = new_id(), tmp_path / "runs" / "ckpt", new_id()
    assert site.backend.launch(request(a, run, home)).ok
    s3 = site.s3.client
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/../escaped", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run}/kept", Body=b"y")
    site.interrupt()
    assert site.backend.observe([a])[a].state is AttemptState.PREEMPTED
    assert local_files(home) == {"kept": b"y"}
    assert not (tmp_path / "runs" / "escaped").exists()


def test_without_a_checkpoint_folder_nothing_goes_to_s3(site: Emulated) -> None:
    run = new_id()
    a = new_id()
    env = {"ARCHIPEL_RUN_ID": run}
    assert site.backend.launch(LaunchRequest(a, ["true"], env)).ok
    assert s3_files(site, run) == {}


# --- the boot script's side, with stand-ins for the AWS CLI -----------------------------------

_FAKE_AWS = """#!/bin/bash
# a stand-in for `aws s3 cp|sync --only-show-errors [--delete] SRC DST` over $FAKE_S3
verb="$2"
shift 2
while [ "${1#--}" != "$1" ]; do shift; done
local_path() { case "$1" in s3://*) echo "$FAKE_S3/${1#s3://}";; *) echo "$1";; esac; }
src=$(local_path "$1"); dst=$(local_path "$2")
case "$verb" in
  cp) mkdir -p "$(dirname "$dst")"
      if [ "$1" = - ]; then cat >"$dst"; else cp "$src" "$dst"; fi ;;
  sync) [ -n "$FAIL_SYNC" ] && exit 1
        mkdir -p "$src"
        rm -rf "$dst" && mkdir -p "$dst" && cp -R "$src/." "$dst/"
        echo "$1 -> $2" >>"$FAKE_S3/syncs" ;;
  *) exit 2 ;;
esac
"""


def _boot(
    tmp_path: Path, run: str, command: list[str], fail: bool = False
) -> tuple[Path, Path, Path]:
    """Run the boot script with stand-ins: (the run's checkpoint prefix, the attempt's S3
    folder, the attempt's folder on the instance), S3 being a folder."""
    bin_dir, s3 = tmp_path / "bin", tmp_path / "s3"
    bin_dir.mkdir()
    for name, text in {"aws": _FAKE_AWS, "shutdown": "#!/bin/sh\n"}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {"ARCHIPEL_RUN_ID": run, "ARCHIPEL_CHECKPOINT_DIR": "/server/ckpt"}
    staging = Staging.parse(f"s3://{BUCKET}/stage")
    script = user_data(
        LaunchRequest("a-1", command, env), staging, "aws-eu", str(tmp_path / "vm"), 1
    )
    shell = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_S3": str(s3)}
    if fail:
        shell["FAIL_SYNC"] = "1"
    subprocess.run(["/bin/bash", "-c", script], env=shell, timeout=30, check=True)
    stage = s3 / BUCKET / "stage"
    return stage / "checkpoints" / run, stage / "a-1", tmp_path / "vm" / "a-1"


def test_the_command_resumes_from_the_checkpoint_and_its_new_one_goes_back(
    tmp_path: Path,
) -> None:
    prefix = tmp_path / "s3" / BUCKET / "stage" / "checkpoints" / "r-1"
    prefix.mkdir(parents=True)
    (prefix / "step").write_text("3")
    command = ["/bin/sh", "-c", 'cd "$ARCHIPEL_CHECKPOINT_DIR" && echo "resumed at $(cat step)"'
               ' && echo 4 >step && echo w >weights && echo "dir=$ARCHIPEL_CHECKPOINT_DIR"']  # fmt: skip
    remote, attempt, vm = _boot(tmp_path, "r-1", command)
    output = (attempt / "output.log").read_text()
    assert "resumed at 3" in output
    assert f"dir={vm}/checkpoint" in output  # the instance's copy, not the server's path
    assert local_files(remote) == {"step": b"4\n", "weights": b"w\n"}
    assert (attempt / "exit_code").read_text() == "0\n"


def test_a_checkpoint_that_cannot_be_fetched_ends_the_attempt_with_125(tmp_path: Path) -> None:
    _, attempt, _ = _boot(tmp_path, "r-2", ["true"], fail=True)
    assert (attempt / "exit_code").read_text() == f"{WORKDIR_FAILED}\n"
    assert "cannot fetch the checkpoint" in (attempt / "output.log").read_text()


def test_the_checkpoint_is_copied_while_the_command_runs(tmp_path: Path) -> None:
    """Every second here (`sync_seconds`): a spot interruption loses at most that."""
    _, attempt, _ = _boot(tmp_path, "r-3", ["/bin/sh", "-c", "sleep 2.5"])
    syncs = (tmp_path / "s3" / "syncs").read_text().splitlines()
    ups = [line for line in syncs if line.endswith("/checkpoints/r-3/")]
    assert len(ups) >= 2  # at least one while it ran, and the last one
    assert (attempt / "exit_code").read_text() == "0\n"
