"""The one narrow seam between the control plane and anything that runs work.

Every backend (this machine, Slurm, Kubernetes, a cloud API) implements
:class:`Backend`. The contract, checked by ``tests/backends/contract.py`` for
every implementation:

- ``launch`` is idempotent by ``attempt_id``: launching the same attempt twice
  starts it once and returns the same backend id. A control plane that crashed
  between "launch" and "record the launch" can simply launch again.
- Failures are data: ``launch`` returns a :class:`LaunchResult` with
  ``ok=False`` and says whether trying elsewhere may help; ``observe`` reports
  an attempt it does not know as ``UNKNOWN``. Only bugs raise.
- ``observe`` and ``cancel`` never block on the work itself; ``cancel`` of an
  unknown or finished attempt is a no-op.
- ``logs`` returns bytes from an offset, so a follower can poll.
- An observation names the ``host`` the attempt runs on when the backend
  knows it (a Slurm node); ``None`` means this machine or not known yet.
- An attempt sees only its own environment: ``env`` over a small base (how to
  find programs, locale, time zone, the home of the account it runs as; see
  ``archipel.backends._env``), never the rest of the server's environment.

Backends are synchronous; the control plane calls them from worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class AttemptState(StrEnum):
    """What a backend says about one attempt."""

    LAUNCHING = "launching"  # recorded by the control plane, the backend not called yet
    PENDING = "pending"  # accepted, not started yet (queued)
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exited 0
    FAILED = "failed"  # exited non-zero, or could not start
    PREEMPTED = "preempted"  # the backend took the resources back (spot, node lost, killed)
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the backend has no such attempt
    # the backend could not be asked (its query failed), or answered with a state
    # Archipel does not know: nothing can be concluded, not even that the attempt is gone
    UNOBSERVED = "unobserved"

    @property
    def finished(self) -> bool:
        return self in {
            AttemptState.SUCCEEDED,
            AttemptState.FAILED,
            AttemptState.PREEMPTED,
            AttemptState.CANCELLED,
        }


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Start ``command`` for one attempt; ``attempt_id`` is the idempotency key.

    ``writable`` names folders the attempt must be able to write (its checkpoint
    folder): a backend that runs attempts as another user hands them to that user.
    ``files`` is an archive (``.tar.gz``) unpacked into the attempt's folder, which
    is then its working directory: the submitter's workdir.
    """

    attempt_id: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    accelerators: str | None = None  # "MODEL:COUNT" per node, for backends that allocate GPUs
    nodes: int = 1
    writable: Sequence[str] = ()
    # a .tar.gz to unpack into the attempt's own folder before it starts (its workdir)
    files: str | None = None


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """The outcome of a launch: a backend id, or why not (and whether elsewhere may work)."""

    attempt_id: str
    ok: bool
    backend_id: str | None = None
    error: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """One attempt as the backend sees it now.

    ``host`` is the machine it runs on (the first node of a multi-node job),
    when the backend knows one; ``None`` for this machine or not placed yet.
    """

    attempt_id: str
    state: AttemptState
    backend_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of an attempt's output from ``offset``; ``next_offset`` continues it."""

    data: bytes
    next_offset: int


@dataclass(frozen=True, slots=True)
class SiteHealth:
    """Whether a site takes new work, and why not."""

    healthy: bool
    reason: str | None = None


class Backend(Protocol):
    """Runs attempts somewhere. See the module docstring for the contract."""

    @property
    def name(self) -> str: ...

    def launch(self, request: LaunchRequest) -> LaunchResult: ...

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]: ...

    def cancel(self, attempt_id: str) -> None: ...

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk: ...

    def health(self) -> SiteHealth: ...
