"""Uploaded workdirs: ``.tar.gz`` archives a run's attempts start in a copy of.

They are kept per tenant, named by their SHA-256 (``<root>/<tenant>/<sha256>.tar.gz``):
a submission names one with ``run.workdir_sha256``, and only the tenant that
uploaded an archive can name it.

**Retention** (:class:`Retention`, applied by :meth:`Workdirs.sweep` from the
reconciler's rounds). An archive's time is its file's modification time: set
when it is uploaded, and again each time a submission names it
(:meth:`Workdirs.claim`). An archive is removed when all of these hold:

- its time is older than ``ttl`` (so one uploaded and not yet submitted, or
  just named again, stays);
- no unfinished run names it (a pending, launching, running or recovering
  run may start an attempt from it at any time);
- no run that names it ended less than ``grace`` ago (so a finished run can
  be submitted again as it was, for a while).

Between the check and the removal a submission may name the archive: it is
first moved aside, its time read again, and put back if a submission claimed
it meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import secrets
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger("archipel.workdirs")

#: the suffix of an archive being removed (moved aside first, see the module docstring)
_REMOVING = ".removing"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long uploaded workdir archives are kept, and how often that is checked."""

    grace: timedelta = timedelta(hours=24)  # after the last run that names it ended
    ttl: timedelta = timedelta(hours=24)  # since it was uploaded, or last named by a submission
    every: timedelta = timedelta(minutes=10)  # between two sweeps

    def __post_init__(self) -> None:
        for name in ("grace", "ttl", "every"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"workdir retention: {name} must not be negative")


@dataclass(frozen=True, slots=True)
class Removed:
    """An archive a sweep removed."""

    tenant: str
    sha256: str
    size: int


def archive_problem(body: bytes, max_unpacked: int) -> str | None:
    """Why a workdir archive is refused, or ``None``: it must be a ``.tar.gz`` of files
    and folders that stay inside the folder it is unpacked into, and unpack to at most
    ``max_unpacked`` bytes."""
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            for member in tar:
                try:
                    if member.name.startswith("/"):
                        raise tarfile.AbsolutePathError(member)
                    tarfile.data_filter(member, "/w")
                except tarfile.FilterError as exc:
                    return f"the archive holds {member.name!r}, which is refused: {exc}"
                total += member.size
                if total > max_unpacked:
                    return f"the archive unpacks to more than {max_unpacked} bytes"
    except (tarfile.TarError, EOFError, OSError) as exc:
        return f"not a .tar.gz archive: {exc}"
    return None


def upload_problem(sha256: str, body: bytes) -> str | None:
    """Why an uploaded archive named ``sha256`` is refused, or ``None``.

    Its hash must be its name, and it may unpack to eight times its size plus 64 MiB
    (more would be a compression bomb, not a workdir).
    """
    if hashlib.sha256(body).hexdigest() != sha256:
        return "the body's SHA-256 is not the one in the path"
    return archive_problem(body, 8 * max(1, len(body)) + (64 << 20))


#: what one tenant's kept archives may add up to by default (``--max-workdir-total``)
TENANT_BYTES = 1 << 30


class WorkdirQuotaError(Exception):
    """An upload would take the tenant's kept archives past its quota (nothing written)."""

    def __init__(self, used: int, size: int, quota: int) -> None:
        super().__init__(
            f"this archive ({size} bytes) would take the tenant's kept workdir archives "
            f"past {quota} bytes ({used} already kept); archives no run needs any more "
            "are removed by the server's retention (--workdir-ttl, --workdir-grace), so "
            "retry later, or ask the operator for a larger --max-workdir-total"
        )
        self.used, self.size, self.quota = used, size, quota


class Workdirs:
    """The folder of uploaded workdir archives, one subfolder per tenant.

    ``quota`` bounds the bytes one tenant's archives (and its uploads under way)
    may take on the server's disk, so one tenant cannot fill it for all.
    """

    def __init__(self, root: Path, quota: int = TENANT_BYTES) -> None:
        if quota < 1:
            raise ValueError(f"the workdir quota must be at least 1 byte, not {quota}")
        self.root = Path(root)
        self.quota = quota
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, tenant: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(tenant, threading.Lock())

    def used(self, tenant: str) -> int:
        """The bytes the tenant's kept archives and its uploads under way take."""
        folder = self.root / tenant
        total = 0
        for pattern in ("*.tar.gz", "*.tmp"):
            for path in folder.glob(pattern):
                with contextlib.suppress(FileNotFoundError):  # removed by a sweep meanwhile
                    total += path.stat().st_size
        return total

    def path(self, tenant: str, sha256: str) -> Path:
        """Where the tenant's archive with this SHA-256 is kept (whether it is there or not)."""
        return self.root / tenant / f"{sha256}.tar.gz"

    def has(self, tenant: str, sha256: str) -> bool:
        """Whether the tenant uploaded an archive with this SHA-256."""
        return self.path(tenant, sha256).is_file()

    def save(self, tenant: str, sha256: str, body: bytes) -> None:
        """Keep ``body`` as the tenant's archive ``sha256``: written aside, then renamed, so
        a reader never sees half an archive. :class:`WorkdirQuotaError` when it would take
        the tenant past its quota (an archive it already keeps is only claimed again)."""
        target = self.path(tenant, sha256)
        with self._lock(tenant):  # two uploads at once cannot both squeeze under the quota
            if self.claim(tenant, sha256):
                return  # the same bytes, by their hash: kept already
            used = self.used(tenant)
            if used + len(body) > self.quota:
                raise WorkdirQuotaError(used, len(body), self.quota)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(body)
            tmp.replace(target)

    def claim(self, tenant: str, sha256: str) -> bool:
        """Whether the tenant's archive ``sha256`` is there; if so, its time is now, so a
        sweep under way keeps it for the run about to name it."""
        try:
            os.utime(self.path(tenant, sha256))
        except FileNotFoundError:
            return False
        return True

    def archives(self) -> Iterator[tuple[str, str, Path]]:
        """Every kept archive, as (tenant, SHA-256, path)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*.tar.gz")):
            yield path.parent.name, path.name.removesuffix(".tar.gz"), path

    def sweep(
        self,
        at: datetime,
        retention: Retention,
        named: Callable[[datetime], set[tuple[str, str]]],
    ) -> list[Removed]:
        """Remove the archives :class:`Retention` lets go at ``at`` (naive UTC); what went.

        ``named(since)`` is every (tenant, SHA-256) named by a run not finished, or
        finished at or after ``since``; it is only asked when some archive is old enough.
        """
        cutoff = at - retention.ttl
        old = [(t, sha, p) for t, sha, p in self.archives() if _older(p, cutoff)]
        self._drop_leftovers(cutoff)
        if not old:
            return []
        keep = named(at - retention.grace)
        removed = []
        for tenant, sha256, path in old:
            if (tenant, sha256) in keep:
                continue
            size = _remove_if_older(path, cutoff)
            if size is not None:
                removed.append(Removed(tenant, sha256, size))
                log.info(
                    "removed workdir %s/%s (%d bytes): unused since %s, named by no "
                    "unfinished run nor by one ended in the last %s",
                    tenant,
                    sha256,
                    size,
                    cutoff.isoformat(" ", "seconds"),
                    retention.grace,
                )
        return removed

    def _drop_leftovers(self, cutoff: datetime) -> None:
        """Half-written uploads and half-removed archives (a crash in between), once old."""
        if not self.root.is_dir():
            return
        for pattern in ("*/*.tmp", f"*/*{_REMOVING}"):
            for path in self.root.glob(pattern):
                if _older(path, cutoff):
                    path.unlink(missing_ok=True)


def _mtime(path: Path) -> datetime:
    """A file's modification time, as the store keeps times (naive UTC)."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def _older(path: Path, cutoff: datetime) -> bool:
    try:
        return _mtime(path) < cutoff
    except FileNotFoundError:
        return False


def _remove_if_older(path: Path, cutoff: datetime) -> int | None:
    """Remove ``path`` unless it was claimed (its time set to now) since it was found old;
    its size, or ``None`` when it stays (or is gone already)."""
    aside = path.with_name(path.name + _REMOVING)
    try:
        path.replace(aside)
    except FileNotFoundError:
        return None
    if not _older(aside, cutoff):  # claimed meanwhile: put it back
        aside.replace(path)
        return None
    size = aside.stat().st_size
    aside.unlink()
    return size
