"""Uploaded workdirs: ``.tar.gz`` archives a run's attempts start in a copy of.

They are kept per tenant, named by their SHA-256 (``<root>/<tenant>/<sha256>.tar.gz``):
a submission names one with ``run.workdir_sha256``, and only the tenant that
uploaded an archive can name it.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
from pathlib import Path


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


class Workdirs:
    """The folder of uploaded workdir archives, one subfolder per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, tenant: str, sha256: str) -> Path:
        """Where the tenant's archive with this SHA-256 is kept (whether it is there or not)."""
        return self.root / tenant / f"{sha256}.tar.gz"

    def has(self, tenant: str, sha256: str) -> bool:
        """Whether the tenant uploaded an archive with this SHA-256."""
        return self.path(tenant, sha256).is_file()

    def save(self, tenant: str, sha256: str, body: bytes) -> None:
        """Keep ``body`` as the tenant's archive ``sha256``: written aside, then renamed, so
        a reader never sees half an archive."""
        target = self.path(tenant, sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
