"""How EC2's answers read as Archipel's: instance states, state reasons, launch errors.

Pure functions over what the EC2 API returns, so each mapping is tested as a table.

**Instance states.** ``pending`` is PENDING and ``running`` RUNNING. An instance
that is ``shutting-down`` or ``terminated`` has ended, and how is decided in order:
an exit status in S3 (the command finished: SUCCEEDED on 0, else FAILED), then the
``archipel:cancelled`` tag (CANCELLED: Archipel terminated it), then the state
reason: a spot interruption (``Server.SpotInstanceTermination``,
``Server.SpotInstanceShutdown``) or any other ``Server.*`` reason is PREEMPTED (AWS
took the instance back; the site is not blamed), someone terminating it outside
Archipel (``Client.UserInitiatedShutdown``) is PREEMPTED too (the run resumes
elsewhere), and the instance powering itself off without an exit status
(``Client.InstanceInitiatedShutdown``: the boot script could not report) is FAILED.
Attempts are launched with shutdown behaviour ``terminate``, so ``stopping`` and
``stopped`` come only from outside (an operator, or a spot interruption with the
``stop`` behaviour): the command is not running and will not finish, PREEMPTED.

**Launch errors.** Every error EC2 answers a launch with says this site cannot take
the attempt now, never that the run is wrong (Archipel wrote the request), so each
is a retryable :class:`LaunchResult`: the reconciler blocks the site for the run and
places it elsewhere. :data:`LAUNCH_REASONS` names the reasons that matter for
failover; throttling is retried by botocore first (its ``standard`` retry mode, a
bounded number of tries) and only then answered the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from archipel.backends._protocol import AttemptState

#: EC2 error code -> what it means for placement (the text of a refused launch)
LAUNCH_REASONS: Mapping[str, str] = {
    "InsufficientInstanceCapacity": "no capacity: AWS has no {type} free in {where} now",
    "InsufficientHostCapacity": "no capacity: no dedicated host free in {where}",
    "InsufficientReservedInstanceCapacity": "no capacity left in the reservation",
    "ReservationCapacityExceeded": "the capacity reservation is full",
    "InstanceLimitExceeded": "quota: the account's instance limit in {where} is reached",
    "VcpuLimitExceeded": "quota: the account's vCPU quota for {type} in {where} is reached",
    "MaxSpotInstanceCountExceeded": "quota: the account's spot instance limit is reached",
    "SpotMaxPriceTooLow": "spot: the spot price of {type} in {where} is above the maximum",
    "Unsupported": "unsupported: {type} is not offered in {where} (or not with these options)",
    "RequestLimitExceeded": "throttled: EC2 kept refusing the request rate after retries",
    "Throttling": "throttled: EC2 kept refusing the request rate after retries",
    "ThrottlingException": "throttled: EC2 kept refusing the request rate after retries",
    "UnauthorizedOperation": "credentials: not allowed to launch instances here",
    "AuthFailure": "credentials: AWS refused them",
    "OptInRequired": "the account is not opted in to {where}",
    "InvalidAMIID.NotFound": "site configuration: the image does not exist in {where}",
    "InvalidAMIID.Malformed": "site configuration: the image id is malformed",
    "InvalidSubnetID.NotFound": "site configuration: the subnet does not exist",
    "InvalidGroup.NotFound": "site configuration: the security group does not exist",
}

#: state reason codes of an instance AWS took back (spot interruption and the like)
_SPOT = {"Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"}
_ENDED = {"shutting-down", "terminated"}
_STOPPED = {"stopping", "stopped"}


def launch_error(code: str, message: str, instance_type: str, where: str) -> str:
    """The text of a refused launch: what it means, then EC2's own code and message."""
    meaning = LAUNCH_REASONS.get(code, "refused")
    return f"EC2 {code}: {meaning.format(type=instance_type, where=where)} ({message})"


def ended_state(
    exit_code: int | None, cancelled: bool, reason_code: str
) -> tuple[AttemptState, str | None]:
    """The state and reason of an attempt whose instance has ended (or been stopped)."""
    if exit_code is not None:
        if exit_code == 0:
            return AttemptState.SUCCEEDED, None
        return AttemptState.FAILED, f"exited with status {exit_code}"
    if cancelled:
        return AttemptState.CANCELLED, "cancelled"
    if reason_code in _SPOT:
        return AttemptState.PREEMPTED, f"spot interruption ({reason_code})"
    if reason_code == "Client.InstanceInitiatedShutdown":
        return (
            AttemptState.FAILED,
            "the instance powered off without reporting an exit status (see its console output)",
        )
    if reason_code == "Client.UserInitiatedShutdown":
        return AttemptState.PREEMPTED, "the instance was terminated outside Archipel"
    return AttemptState.PREEMPTED, f"the instance ended ({reason_code or 'no reason given'})"


def instance_state(
    state: str, reason_code: str, exit_code: int | None, cancelled: bool
) -> tuple[AttemptState, str | None]:
    """An instance's state name (and, once it ended, how) as an attempt state and reason."""
    if state == "pending":
        return AttemptState.PENDING, None
    if state == "running":
        return AttemptState.RUNNING, None
    if state in _ENDED:
        return ended_state(exit_code, cancelled, reason_code)
    if state in _STOPPED:
        if exit_code is not None or cancelled:
            return ended_state(exit_code, cancelled, reason_code)
        why = "spot interruption" if reason_code in _SPOT else "stopped outside Archipel"
        return AttemptState.PREEMPTED, f"the instance was {state} ({why}; {reason_code or '-'})"
    return AttemptState.UNOBSERVED, f"EC2 reports an instance state Archipel does not know: {state}"


def needs_exit_code(state: str) -> bool:
    """Whether the exit status in S3 decides this state (the instance is not running)."""
    return state in _ENDED or state in _STOPPED
