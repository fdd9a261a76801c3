"""A run's checkpoint on an EC2 site: carried to S3 for the attempt, and back when it ends.

The control plane gives every attempt a checkpoint folder of its run
(``ARCHIPEL_CHECKPOINT_DIR``, on the server's disk): whatever an attempt leaves
there, the run's next attempt finds, on any site. An instance cannot see the
server's disk, so for an attempt on an EC2 site the folder travels through the
site's staging bucket, under ``<staging>/checkpoints/<run id>/``:

1. **out**, at launch: the backend mirrors the server's folder to that prefix
   (uploads its files, removes keys it does not hold);
2. **on the instance**: the boot script mirrors the prefix into a local folder,
   which the command gets as its ``ARCHIPEL_CHECKPOINT_DIR``, mirrors it back
   every ``checkpoint_sync_seconds`` while the command runs, and once more when it
   ends (a spot interruption loses at most one period);
3. **back**, once the attempt has ended (succeeded, failed, preempted or
   cancelled): the first observation of that end mirrors the prefix back into the
   server's folder before reporting it, so the reconciler, which relaunches on that
   observation, finds the checkpoint home. If S3 cannot be read then, the attempt is
   reported ``unobserved`` and the next round tries again.

A SageMaker site keeps the same prefix (its training job's ``CheckpointConfig.S3Uri``;
SageMaker itself copies it to and from the container), and the same steps 1 and 3
(:func:`send` and :func:`bring_back`), so a run moving between EC2, SageMaker and
local sites finds its checkpoint wherever it goes next.

The checkpoint crosses into a bucket only where the run was placed: the policy that
allowed the site allowed its data there. Keep each site's staging bucket in the
site's own region (docs/aws.md).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archipel.backends._aws import api_errors, describe
from archipel.backends._ec2_script import Staging, checkpoint_of
from archipel.backends._files import record, recorded
from archipel.backends._protocol import AttemptState, LaunchRequest, Observation

log = logging.getLogger("archipel.backends.ec2")


@dataclass(frozen=True, slots=True)
class CheckpointHome:
    """Where one run's checkpoint lives on the server, and its prefix in the bucket."""

    local: Path
    bucket: str
    prefix: str  # ends with "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _local_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder``, by its path relative to it (``/``-separated)."""
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(folder).as_posix()] = path
    return out


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def push(s3: Any, home: CheckpointHome) -> int:
    """Mirror the server's folder to the prefix; the number of files uploaded."""
    files = _local_files(home.local)
    for name, path in files.items():
        s3.upload_file(str(path), home.bucket, home.prefix + name)
    stale = [k for k in _keys(s3, home.bucket, home.prefix) if k[len(home.prefix) :] not in files]
    for start in range(0, len(stale), 1000):
        chunk = stale[start : start + 1000]
        s3.delete_objects(Bucket=home.bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
    return len(files)


def pull(s3: Any, home: CheckpointHome) -> int:
    """Mirror the prefix into the server's folder; the number of files downloaded.

    Each file is written beside its target and renamed into place. A key that would
    land outside the folder (``..``, an absolute name: the instance wrote it, and an
    instance is not trusted with the server's disk) is skipped, and logged."""
    root = home.local.resolve()
    root.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, tuple[str, Path]] = {}  # name in the folder -> (its key, its path)
    for key in _keys(s3, home.bucket, home.prefix):
        name = key[len(home.prefix) :]
        if not name or name.endswith("/"):
            continue
        target = (root / name).resolve()
        if root not in target.parents:
            log.warning("checkpoint key %r would land outside %s: skipped", key, root)
            continue
        wanted[target.relative_to(root).as_posix()] = (key, target)
    for key, target in wanted.values():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        s3.download_file(home.bucket, key, str(partial))
        os.replace(partial, target)
    for name, path in _local_files(root).items():
        if name not in wanted:
            path.unlink()
    return len(wanted)


def send_workdir(s3: Any, staging: Staging, request: LaunchRequest) -> str | None:
    """Upload the attempt's workdir archive (if it ships one) to its staging folder, where
    the instance's boot script or the training job's input channel takes it; the reason
    when S3 refused, else None."""
    if request.files is None:
        return None
    a = request.attempt_id
    try:
        s3.upload_file(request.files, staging.bucket, staging.key(a, "workdir.tar.gz"))
    except api_errors() as exc:
        return f"cannot upload the workdir to {staging.uri(a, 'workdir.tar.gz')}: {describe(exc)}"
    return None


def home_of(request: LaunchRequest, staging: Staging) -> CheckpointHome | None:
    """Where the attempt's run keeps its checkpoint in the staging bucket; None if the
    attempt has none."""
    found = checkpoint_of(request)
    if found is None:
        return None
    run_id, local = found
    return CheckpointHome(Path(local), staging.bucket, staging.checkpoints(run_id))


def send(s3: Any, home: CheckpointHome, folder: Path) -> str | None:
    """Step 1: mirror the run's checkpoint to its prefix and note it in the attempt's
    ``folder`` (for :func:`bring_back`); the reason when S3 refused, else None."""
    try:
        push(s3, home)
    except api_errors() as exc:
        return f"cannot copy the run's checkpoint to {home.uri}: {describe(exc)}"
    record(folder, "checkpoint", json.dumps([str(home.local), home.bucket, home.prefix]))
    return None


def bring_back(s3: Any, folder: Path, observation: Observation, site: str) -> Observation:
    """Step 3: an ended attempt's checkpoint mirrored home before its end is reported,
    once; ``unobserved`` while S3 cannot be read (the next round asks again)."""
    a = observation.attempt_id
    saved = recorded(folder, "checkpoint")
    if not observation.state.finished or saved is None or recorded(folder, "checkpoint_back"):
        return observation
    local, bucket, prefix = json.loads(saved)
    home = CheckpointHome(Path(local), bucket, prefix)
    try:
        files = str(pull(s3, home))
    except api_errors() as exc:  # S3 out of reach: the next round asks again
        why = f"cannot bring the checkpoint back from {home.uri}: {describe(exc)}"
        log.warning("site %s: attempt %s: %s", site, a, why)
        return Observation(a, AttemptState.UNOBSERVED, observation.backend_id, reason=why)
    except OSError as exc:  # the server's disk: asking again would not help
        files = f"failed: {describe(exc)}"
        log.error("site %s: attempt %s: checkpoint not brought back: %s", site, a, exc)
    record(folder, "checkpoint_back", files)
    return observation
