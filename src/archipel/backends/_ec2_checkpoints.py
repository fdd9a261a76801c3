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

The checkpoint crosses into a bucket only where the run was placed: the policy that
allowed the site allowed its data there. Keep each site's staging bucket in the
site's own region (docs/aws.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
