"""An in-memory backend: a fast test double that passes the same contract suite.

Tests drive it: :meth:`FakeBackend.finish`, :meth:`FakeBackend.preempt` and
:meth:`FakeBackend.set_health` change what ``observe`` and ``health`` report;
``launch_failures`` makes the next launches fail. A command of the form
``["fake-exit", CODE, OUTPUT...]`` finishes with that code (printing OUTPUT) the
first time it is observed, so the shared contract suite can drive it like a
real backend; ``["fake-env", NAME...]`` likewise prints ``NAME=value`` (or
``NAME=<unset>``) for each name in the environment a real attempt would get
(:func:`archipel.backends._env.attempt_environment`). Any other command runs
until finished or cancelled.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from archipel.backends._env import attempt_environment
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)

_SCRIPTED = {"fake-exit", "fake-env"}


def _scripted_output(request: LaunchRequest) -> tuple[int, str]:
    """The exit code and output of a ``fake-exit`` or ``fake-env`` command."""
    command = list(request.command)
    if command[0] == "fake-env":
        env = attempt_environment(request.env)
        return 0, "".join(f"{name}={env.get(name, '<unset>')}\n" for name in command[1:])
    return int(command[1]), "".join(f"{line}\n" for line in command[2:])


@dataclass
class _Job:
    request: LaunchRequest
    backend_id: str
    state: AttemptState = AttemptState.RUNNING
    exit_code: int | None = None
    reason: str | None = None
    output: bytearray = field(default_factory=bytearray)


class FakeBackend:
    """Attempts live in a dict; nothing runs."""

    def __init__(self, name: str = "fake") -> None:
        self._name = name
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._health = SiteHealth(True)
        self.launch_failures: list[LaunchResult] = []  # consumed first, one per launch
        # while set, observe() cannot ask the backend: every attempt is UNOBSERVED, this why
        self.observe_failure: str | None = None
        self.launches = 0  # real starts (not idempotent repeats)

    @property
    def name(self) -> str:
        return self._name

    def launch(self, request: LaunchRequest) -> LaunchResult:
        with self._lock:
            job = self._jobs.get(request.attempt_id)
            if job is not None:
                return LaunchResult(request.attempt_id, True, job.backend_id)
            if not self._health.healthy:
                return LaunchResult(
                    request.attempt_id, False, error=self._health.reason, retryable=True
                )
            if self.launch_failures:
                failure = self.launch_failures.pop(0)
                return LaunchResult(
                    request.attempt_id,
                    failure.ok,
                    failure.backend_id,
                    failure.error,
                    failure.retryable,
                )
            job = _Job(request, f"{self._name}-{next(self._ids)}")
            if request.command and request.command[0] not in _SCRIPTED:
                job.output += f"started {' '.join(request.command)}\n".encode()
            self._jobs[request.attempt_id] = job
            self.launches += 1
            return LaunchResult(request.attempt_id, True, job.backend_id)

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        with self._lock:
            if self.observe_failure is not None:  # the backend cannot be asked
                why = self.observe_failure
                return {a: Observation(a, AttemptState.UNOBSERVED, reason=why) for a in attempt_ids}
            out = {}
            for attempt_id in attempt_ids:
                job = self._jobs.get(attempt_id)
                if job is not None and job.state is AttemptState.RUNNING:
                    command = job.request.command
                    if command and command[0] in _SCRIPTED:
                        job.exit_code, output = _scripted_output(job.request)
                        job.output += output.encode()
                        job.state = (
                            AttemptState.SUCCEEDED if job.exit_code == 0 else AttemptState.FAILED
                        )
                out[attempt_id] = (
                    Observation(attempt_id, AttemptState.UNKNOWN)
                    if job is None
                    else Observation(
                        attempt_id, job.state, job.backend_id, job.exit_code, job.reason
                    )
                )
            return out

    def cancel(self, attempt_id: str) -> None:
        with self._lock:
            job = self._jobs.get(attempt_id)
            if job is not None and not job.state.finished:
                job.state, job.reason = AttemptState.CANCELLED, "cancelled"

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        with self._lock:
            job = self._jobs.get(attempt_id)
            data = bytes(job.output[offset:]) if job is not None else b""
            return LogChunk(data, offset + len(data))

    def health(self) -> SiteHealth:
        return self._health

    # -- test controls ---------------------------------------------------------

    def finish(self, attempt_id: str, exit_code: int = 0) -> None:
        with self._lock:
            job = self._jobs[attempt_id]
            job.exit_code = exit_code
            job.state = AttemptState.SUCCEEDED if exit_code == 0 else AttemptState.FAILED
            job.output += f"exited {exit_code}\n".encode()

    def preempt(self, attempt_id: str, reason: str = "preempted") -> None:
        with self._lock:
            job = self._jobs[attempt_id]
            job.state, job.reason = AttemptState.PREEMPTED, reason

    def set_health(self, healthy: bool, reason: str | None = None) -> None:
        self._health = SiteHealth(healthy, reason)
