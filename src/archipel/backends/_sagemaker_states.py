"""How SageMaker's answers read as Archipel's: training job statuses, launch errors, types.

Pure functions over what the SageMaker API returns, so each mapping is tested as a table.

**Job statuses.** ``DescribeTrainingJob`` gives a ``TrainingJobStatus`` and a finer
``SecondaryStatus``:

- ``InProgress`` is RUNNING while the command runs (``Training``, ``Uploading``) and
  PENDING before it (``Starting``, ``LaunchingMLInstances``, ``Downloading``, ...).
  ``Interrupted`` and ``Restarting`` (a managed spot interruption that SageMaker
  itself resumes from the checkpoint once spot capacity is back, within
  ``MaxWaitTimeInSeconds``) are PENDING too: the job is alive and will run again,
  so launching the run elsewhere now would run it twice.
- ``Completed`` is SUCCEEDED (exit status 0).
- ``Failed`` is FAILED with the command's exit status, read from the failure reason
  the attempt's wrapper writes (``archipel: exit status N``); a failure that is AWS's
  (``CapacityError``, ``InsufficientCapacity``, an internal error) is PREEMPTED
  instead: the site took the resources back or never gave them, the command is not
  to blame.
- ``Stopped``, and ``Stopping`` on its way there: CANCELLED when Archipel stopped it;
  otherwise ``MaxWaitTimeExceeded`` (managed spot capacity did not come back in
  time) and a stop from outside Archipel are PREEMPTED (the run resumes elsewhere),
  and ``MaxRuntimeExceeded`` is FAILED (the command ran past the site's limit, and
  would again). A job stopping from outside is still RUNNING until it has stopped,
  so that its last checkpoint is in S3 before the run moves.

**Launch errors.** What ``CreateTrainingJob`` is refused with is a retryable launch
result naming the reason, with the same words as the EC2 backend's
(:data:`archipel.backends._ec2_states.LAUNCH_REASONS`): the reconciler blocks the
site for the run and places it elsewhere. Throttling is retried by botocore first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from archipel.backends._protocol import AttemptState

#: SageMaker error code -> what it means for placement (the text of a refused launch)
LAUNCH_REASONS: Mapping[str, str] = {
    "ResourceLimitExceeded": "quota: the account's {type} limit in {where} is reached",
    "CapacityError": "no capacity: AWS has no {type} free in {where} now",
    "InsufficientCapacity": "no capacity: AWS has no {type} free in {where} now",
    "InsufficientCapacityError": "no capacity: AWS has no {type} free in {where} now",
    "ThrottlingException": "throttled: SageMaker kept refusing the request rate after retries",
    "Throttling": "throttled: SageMaker kept refusing the request rate after retries",
    "AccessDeniedException": "credentials: not allowed to create training jobs here",
    "UnrecognizedClientException": "credentials: AWS refused them",
    "InvalidClientTokenId": "credentials: AWS refused them",
    "ExpiredTokenException": "credentials: they have expired",
    "ValidationException": "site configuration: SageMaker refused the job's parameters",
    "ResourceNotFound": "site configuration: something the job names does not exist",
}

_PENDING = {
    "Starting",
    "Pending",
    "LaunchingMLInstances",
    "PreparingTrainingStack",
    "Downloading",
    "DownloadingTrainingImage",
    "Updating",
}
_RESUMING = {"Interrupted", "Restarting"}  # managed spot: SageMaker resumes the job itself
_RUNNING = {"Training", "Uploading"}
#: failure reasons of a job AWS could not give (or keep) instances to
_AWS_FAULTS = (
    "CapacityError",
    "InsufficientCapacity",
    "InsufficientInstanceCapacity",
    "InternalServerError",
    "InternalFailure",
)
_EXIT = re.compile(r"exit (?:status|code)[:= ]*(\d{1,3})\b", re.IGNORECASE)

#: the SageMaker type of one node with these accelerators, when a site names none
#: (model as Archipel names it, count per node); the smallest such type AWS sells
INSTANCE_TYPES: Mapping[tuple[str, int], str] = {
    ("cpu", 1): "ml.m5.xlarge",
    ("T4", 1): "ml.g4dn.xlarge",
    ("T4", 4): "ml.g4dn.12xlarge",
    ("A10G", 1): "ml.g5.xlarge",
    ("A10G", 4): "ml.g5.12xlarge",
    ("A10G", 8): "ml.g5.48xlarge",
    ("L4", 1): "ml.g6.xlarge",
    ("L4", 4): "ml.g6.12xlarge",
    ("L4", 8): "ml.g6.48xlarge",
    ("L40S", 1): "ml.g6e.xlarge",
    ("V100", 1): "ml.p3.2xlarge",
    ("V100", 4): "ml.p3.8xlarge",
    ("V100", 8): "ml.p3.16xlarge",
    ("A100", 8): "ml.p4d.24xlarge",
    ("H100", 8): "ml.p5.48xlarge",
}


def launch_error(code: str, message: str, instance_type: str, where: str) -> str:
    """The text of a refused launch: what it means, then SageMaker's own code and message."""
    meaning = LAUNCH_REASONS.get(code, "refused")
    return f"SageMaker {code}: {meaning.format(type=instance_type, where=where)} ({message})"


def exit_status(failure_reason: str) -> int | None:
    """The command's exit status named in a failure reason, if one is."""
    match = _EXIT.search(failure_reason)
    return int(match.group(1)) if match else None


def job_state(
    status: str, secondary: str, failure_reason: str, cancelled: bool
) -> tuple[AttemptState, str | None, int | None]:
    """A training job's status (see the module docstring) as an attempt state, a
    reason and, once the command has ended, its exit status."""
    if status == "InProgress":
        if secondary in _RUNNING:
            return AttemptState.RUNNING, None, None
        if secondary in _RESUMING:
            why = (
                f"managed spot interruption ({secondary}): SageMaker resumes the job "
                "from its checkpoint when spot capacity is back"
            )
            return AttemptState.PENDING, why, None
        if secondary in _PENDING or not secondary:
            return AttemptState.PENDING, secondary or None, None
    if status == "Completed":
        return AttemptState.SUCCEEDED, None, 0
    if status == "Failed":
        return _failed(failure_reason)
    if status in {"Stopping", "Stopped"}:
        return _stopped(status, secondary, cancelled)
    known = f"{status}/{secondary}" if secondary else status
    return (
        AttemptState.UNOBSERVED,
        f"SageMaker reports a status Archipel does not know: {known}",
        None,
    )


def _failed(failure_reason: str) -> tuple[AttemptState, str | None, int | None]:
    reason = failure_reason or "no failure reason given"
    if any(fault in failure_reason for fault in _AWS_FAULTS):
        return AttemptState.PREEMPTED, f"AWS could not run the job: {reason}", None
    code = exit_status(failure_reason)
    return AttemptState.FAILED, reason, code if code is not None else 1


def _stopped(
    status: str, secondary: str, cancelled: bool
) -> tuple[AttemptState, str | None, int | None]:
    if cancelled:
        return AttemptState.CANCELLED, "cancelled", None
    if status == "Stopping":
        return AttemptState.RUNNING, "stopped from outside Archipel: stopping", None
    if secondary == "MaxWaitTimeExceeded":
        why = "managed spot capacity did not come back within MaxWaitTimeInSeconds"
        return AttemptState.PREEMPTED, why, None
    if secondary == "MaxRuntimeExceeded":
        return AttemptState.FAILED, "ran longer than the site's MaxRuntimeInSeconds", None
    return (
        AttemptState.PREEMPTED,
        f"the job was stopped outside Archipel ({secondary or '-'})",
        None,
    )
