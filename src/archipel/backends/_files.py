"""Per-attempt folders shared by the backends that keep state on disk (local, Slurm)."""

from __future__ import annotations

import contextlib
import fcntl
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from archipel.backends._protocol import LogChunk

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def attempt_folder(root: Path, attempt_id: str) -> Path:
    """``root/attempt_id``; an id that is not a safe file name is a ``ValueError``."""
    if not _SAFE_ID.match(attempt_id):
        raise ValueError(f"attempt id {attempt_id!r} is not a safe file name")
    return root / attempt_id


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive file lock on ``folder`` (created if needed), across processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def recorded(folder: Path, name: str) -> str | None:
    """The id a backend recorded in the attempt's folder under ``name``, if any."""
    try:
        return (folder / name).read_text().strip() or None
    except FileNotFoundError:
        return None


def record(folder: Path, name: str, value: str) -> None:
    """Record ``value`` under ``name`` in the attempt's folder, whole or not at all."""
    tmp = folder / f"{name}.tmp"
    tmp.write_text(value + "\n")
    tmp.replace(folder / name)


def read_log(path: Path, offset: int, limit: int = 1 << 20) -> LogChunk:
    """Up to ``limit`` bytes of a log file from ``offset`` (a missing file is empty so far)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    except FileNotFoundError:
        data = b""
    return LogChunk(data, offset + len(data))


def _inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """``tarfile``'s ``data`` filter, which also refuses an absolute name (not strip it)."""
    if member.name.startswith("/"):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest)


def unpack(archive: Path, into: Path) -> None:
    """Unpack a workdir archive (``.tar.gz``) into ``into``, overwriting what it names.

    Only what stays inside ``into`` is taken (``tarfile``'s ``data`` filter, and no
    absolute path, no ``..``, no link out of it, no device); anything else is a
    ``ValueError`` that names the member.
    """
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter=_inside)
    except tarfile.FilterError as exc:
        raise ValueError(f"the workdir archive is refused: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise ValueError(f"the workdir archive cannot be read: {exc}") from None
