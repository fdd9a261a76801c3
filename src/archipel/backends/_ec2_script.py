"""What an EC2 attempt runs: its user data script, and where it keeps its files in S3.

Every attempt has a folder in the site's staging location, ``<staging>/<attempt_id>/``:

- ``workdir.tar.gz``: the submitter's workdir, uploaded by the backend before the launch;
- ``output.log``: the command's output (standard output and error), uploaded when it ends;
- ``exit_code``: the command's exit status and a newline, uploaded last.

An attempt with a checkpoint (its run's ``ARCHIPEL_CHECKPOINT_DIR``) also has the
run's checkpoint prefix, ``<staging>/checkpoints/<run id>/``: the script copies it
into ``/var/lib/archipel/<attempt_id>/checkpoint`` before the command starts (the
command's ``ARCHIPEL_CHECKPOINT_DIR``), back to S3 every ``sync_seconds`` while it
runs and once more when it ends; see :mod:`archipel.backends._ec2_checkpoints`.

The user data script (run once as root by cloud-init at first boot) makes
``/var/lib/archipel/<attempt_id>/work``, unpacks the workdir into it, runs the
command there with only the attempt's own environment (``env -i``: a small base,
then ``LaunchRequest.env``, ``ARCHIPEL_ATTEMPT_ID`` and ``ARCHIPEL_ATTEMPT_DIR``),
uploads its output and exit status, then powers the instance off. The instance is
launched with ``InstanceInitiatedShutdownBehavior=terminate``, so powering off
terminates it and its volumes go with it. A workdir that cannot be fetched or
unpacked ends the attempt with exit status 125 and says why in ``output.log``.

The script needs the AWS CLI on the image (Amazon Linux and the AWS Deep Learning
AMIs have it) and an instance profile allowed to read and write the attempt's
folder (see docs/aws.md). The environment travels in the user data, which anyone
allowed ``ec2:DescribeInstanceAttribute`` in the account can read: a secret passed
to a workload this way is visible to them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from archipel.backends._protocol import LaunchRequest

#: EC2 refuses user data over 16 KiB (before base64)
USER_DATA_LIMIT = 16 * 1024
#: the exit status of an attempt whose workdir could not be fetched or unpacked
WORKDIR_FAILED = 125
_STAGING = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/([A-Za-z0-9._/-]*))?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: how often the boot script copies a running attempt's checkpoint to S3, by default
CHECKPOINT_SYNC_SECONDS = 60
#: what every attempt starts with on the instance, before its own variables
_BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


@dataclass(frozen=True, slots=True)
class Staging:
    """An S3 bucket and key prefix holding one folder per attempt."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> Staging:
        match = _STAGING.match(uri)
        if not match:
            raise ValueError(
                f"staging {uri!r} is not an S3 location: write s3://BUCKET or s3://BUCKET/PREFIX"
            )
        return cls(match.group(1), (match.group(2) or "").strip("/"))

    def key(self, attempt_id: str, name: str) -> str:
        """The key of one of an attempt's files (``workdir.tar.gz``, ``output.log``, ...)."""
        return "/".join(p for p in (self.prefix, attempt_id, name) if p)

    def uri(self, attempt_id: str, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(attempt_id, name)}"

    def checkpoints(self, run_id: str) -> str:
        """The key prefix of a run's checkpoint (``.../checkpoints/<run id>/``)."""
        return "/".join(p for p in (self.prefix, "checkpoints", run_id) if p) + "/"


def checkpoint_of(request: LaunchRequest) -> tuple[str, str] | None:
    """(run id, the server's checkpoint folder) when the attempt has a checkpoint."""
    run_id = request.env.get("ARCHIPEL_RUN_ID")
    folder = request.env.get("ARCHIPEL_CHECKPOINT_DIR")
    if not run_id or not folder or not _RUN_ID.match(run_id):
        return None
    return run_id, folder


def bad_env_names(env: Mapping[str, str]) -> list[str]:
    """The names the script could not pass on (not shell variable names), sorted."""
    return sorted(k for k in env if not _ENV_NAME.match(k))


def user_data(
    request: LaunchRequest,
    staging: Staging,
    site: str,
    root: str = "/var/lib/archipel",
    sync_seconds: int = CHECKPOINT_SYNC_SECONDS,
) -> str:
    """The boot script of one attempt's instance (see the module docstring); its
    folder is ``<root>/<attempt_id>``."""
    a = request.attempt_id
    home = f"{root}/{a}"
    env = {
        **_BASE_ENV,
        **request.env,
        "ARCHIPEL_ATTEMPT_ID": a,
        "ARCHIPEL_ATTEMPT_DIR": f"{home}/work",
    }
    checkpoint = checkpoint_of(request)
    if checkpoint is not None:  # the instance's own copy (archipel.backends._ec2_checkpoints)
        env["ARCHIPEL_CHECKPOINT_DIR"] = f"{home}/checkpoint"
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Archipel attempt {a} on site {site}: run the command in its workdir,",
        "# upload its output and exit status, then power off (which terminates the instance).",
        "set -u",
        f"home={q(home)}",
        'mkdir -p "$home/work" && chmod 700 "$home"',
        "report() {",
        f'  aws s3 cp --only-show-errors "$home/output.log" {q(staging.uri(a, "output.log"))}',
        f'  printf "%s\\n" "$1" | aws s3 cp --only-show-errors - {q(staging.uri(a, "exit_code"))}',
        "  shutdown -h now",
        "  exit 0",
        "}",
        'cd "$home/work" || report 125',
    ]
    if request.files is not None:
        source = q(staging.uri(a, "workdir.tar.gz"))
        lines += [
            f"if ! aws s3 cp --only-show-errors {source} - | tar -xzf - --no-same-owner; then",
            f'  echo "archipel: cannot fetch or unpack the workdir {source}" >"$home/output.log"',
            f"  report {WORKDIR_FAILED}",
            "fi",
        ]
    assignments = " ".join(f"{name}={q(value)}" for name, value in env.items())
    command = " ".join(q(part) for part in request.command)
    run = f'env -i {assignments} {command} </dev/null >"$home/output.log" 2>&1'
    if checkpoint is None:
        lines += [run, 'report "$?"', ""]
        return "\n".join(lines)
    remote = q(f"s3://{staging.bucket}/{staging.checkpoints(checkpoint[0])}")
    sync_up = f'aws s3 sync --only-show-errors --delete "$home/checkpoint" {remote}'
    lines += [
        'mkdir -p "$home/checkpoint"',
        f'if ! aws s3 sync --only-show-errors --delete {remote} "$home/checkpoint"; then',
        f'  echo "archipel: cannot fetch the checkpoint {remote}" >"$home/output.log"',
        f"  report {WORKDIR_FAILED}",
        "fi",
        f"( while sleep {int(sync_seconds)}; do {sync_up}; done ) >/dev/null 2>&1 &",
        "syncing=$!",
        run,
        'status="$?"',
        'kill "$syncing" 2>/dev/null; wait "$syncing" 2>/dev/null',
        f"if ! {sync_up}; then",
        f'  echo "archipel: cannot copy the last checkpoint to {remote}" >>"$home/output.log"',
        "fi",
        'report "$status"',
        "",
    ]
    return "\n".join(lines)
