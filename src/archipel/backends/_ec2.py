"""Run attempts on EC2 instances: one instance per attempt, in one region (and zone).

One :class:`Ec2Backend` is one site: an instance type in a region (optionally one
zone), on-demand, spot or in a Capacity Block, optionally in a capacity reservation. It talks to AWS
through boto3 with the standard credential chain (environment, profile, instance
role); Archipel never stores nor logs a credential, and the backend holds none
itself (boto3 resolves them when it signs a request). botocore's own debug log
prints request headers, the session token among them: building the clients raises
the SDK's loggers to WARNING, so debug logging never writes one.

**Launch.** ``RunInstances`` with the attempt's boot script as user data (see
:mod:`archipel.backends._ec2_script`: it fetches the workdir from the site's S3
staging location, runs the command, uploads its output and exit status, powers
off), shutdown behaviour ``terminate``, and the tags ``archipel:run``,
``archipel:attempt`` and ``archipel:site`` on the instance and its volumes. The
launch is idempotent three ways: under a file lock on ``<state_dir>/<attempt_id>/``
the recorded instance id answers first, then an instance found by its
``archipel:attempt`` tag, and only then is ``RunInstances`` called, with
``ClientToken`` = the attempt id so that EC2 itself starts one instance even when
two control planes, or a retry after a lost answer, ask twice.

**Observe.** ``DescribeInstances`` filtered by the site and attempt tags, up to
:data:`BATCH` attempts a call; states map as
:mod:`archipel.backends._ec2_states` says. The exit status of an instance that has
ended comes from the ``exit_code`` object in S3. A failed API call makes every
attempt it covers ``UNOBSERVED``, never ``UNKNOWN``: nothing can be concluded.

**Capacity.** A site may launch into an On-Demand Capacity Reservation
(``capacity_reservation``: ``CapacityReservationSpecification.CapacityReservationTarget``)
or into a Capacity Block for ML (``market: capacity-block`` with the block's reservation
id: ``InstanceMarketOptions.MarketType = "capacity-block"`` as well). Such a site is
healthy only while its reservation is ``active`` (``DescribeCapacityReservations``), so
a block before or after its window gets no work.

**Cancel and teardown.** ``cancel`` tags the instance ``archipel:cancelled`` and
terminates it. The backend creates no security group and no key pair (it uses the
site's, or the VPC default), and the root volume is deleted with the instance
(``DeleteOnTermination``, set explicitly when the site gives ``root_volume_gib``,
else the image's own mapping, true for Amazon's images): a terminated instance
leaves nothing behind in EC2. The attempt's folder in S3 stays as its record (its
log and exit status), as local and Slurm sites keep theirs; a lifecycle rule on the
bucket expires it.

**Errors.** What EC2 refuses a launch with is a retryable :class:`LaunchResult`
naming the reason (capacity, quota, spot price, unsupported type, throttling,
credentials, the site's configuration), so the reconciler places the run
elsewhere. Throttled calls are retried by botocore (``standard`` mode,
``max_attempts`` tries) first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from archipel.backends._aws import ClientFactory, api_errors, default_clients
from archipel.backends._aws import describe as _describe
from archipel.backends._aws import error_code as _error_code
from archipel.backends._ec2_checkpoints import bring_back, home_of, send, send_workdir
from archipel.backends._ec2_script import (
    CHECKPOINT_SYNC_SECONDS,
    USER_DATA_LIMIT,
    Staging,
    bad_env_names,
    user_data,
)
from archipel.backends._ec2_states import instance_state, launch_error, needs_exit_code
from archipel.backends._files import attempt_folder, locked, record, recorded
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)

log = logging.getLogger("archipel.backends.ec2")

#: attempts per DescribeInstances call (EC2 takes up to 200 values in one filter)
BATCH = 100
#: bytes of a log read at once
_LOG_LIMIT = 1 << 20
_TAG_RUN, _TAG_ATTEMPT, _TAG_SITE, _TAG_CANCELLED = (
    "archipel:run",
    "archipel:attempt",
    "archipel:site",
    "archipel:cancelled",
)

#: how instances are bought: on demand (optionally in an On-Demand Capacity Reservation),
#: spot, or in a Capacity Block for ML (a reservation bought for a fixed window)
Market = Literal["on-demand", "spot", "capacity-block"]


@dataclass(frozen=True, slots=True)
class Ec2Config:
    """Where and how one EC2 site launches (what a ``backend: aws`` site declares)."""

    region: str
    image: str  # an AMI id in that region
    instance_type: str
    staging: str  # s3://BUCKET[/PREFIX]: the attempts' workdirs, logs and exit statuses
    market: Market = "on-demand"
    zone: str | None = None
    capacity_reservation: str | None = None
    subnet: str | None = None
    security_group: str | None = None
    instance_profile: str | None = None  # its name; lets the boot script use the staging
    root_volume_gib: int | None = None
    endpoint_url: str | None = None  # an emulator's, for tests; None: AWS's own
    max_attempts: int = 4  # tries of one API call (botocore's standard retry mode)
    health_ttl: float = 60.0  # seconds a healthy answer is kept
    # how often a running attempt's checkpoint is copied to S3 (a spot interruption loses
    # at most this much of it)
    checkpoint_sync_seconds: int = CHECKPOINT_SYNC_SECONDS

    @staticmethod
    def market_problem(market: str, capacity_reservation: str | None) -> str | None:
        """What is wrong with a site's market and reservation together (None: nothing).

        A Capacity Block is launched into by its reservation id, so it needs one; a spot
        instance cannot use a capacity reservation (reservations hold On-Demand capacity)."""
        if market == "capacity-block" and capacity_reservation is None:
            return (
                "market capacity-block needs capacity_reservation: the Capacity Block's "
                "reservation id (cr-...), as EC2 lists it once the block is bought"
            )
        if market == "spot" and capacity_reservation is not None:
            return (
                "a spot site cannot launch into a capacity reservation (it holds On-Demand "
                "capacity): remove capacity_reservation or set market: on-demand"
            )
        return None

    def __post_init__(self) -> None:
        problem = self.market_problem(self.market, self.capacity_reservation)
        if problem is not None:
            raise ValueError(problem)

    @property
    def where(self) -> str:
        return self.zone or self.region


def _batches(items: Sequence[str], size: int = BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


class Ec2Backend:
    """EC2 instances in one region as a site; a folder per attempt under ``state_dir``.

    ``clients`` makes the boto3 client of a service (``"ec2"``, ``"s3"``); tests pass
    one that injects faults. The default uses the standard AWS credential chain.
    """

    def __init__(
        self,
        name: str,
        config: Ec2Config,
        state_dir: Path,
        *,
        clients: ClientFactory | None = None,
    ) -> None:
        self._name = name
        self.config = config
        self.staging = Staging.parse(config.staging)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        make = clients or default_clients(config.region, config.endpoint_url, config.max_attempts)
        self._ec2 = make("ec2")
        self._s3 = make("s3")
        self._healthy_until = 0.0  # time.monotonic() until which health is known good

    def __repr__(self) -> str:
        c = self.config
        return f"Ec2Backend({self._name!r}, {c.region}, {c.instance_type}, {c.market})"

    @property
    def name(self) -> str:
        return self._name

    # --- plumbing ----------------------------------------------------------------------

    def _dir(self, attempt_id: str) -> Path:
        return attempt_folder(self.state_dir, attempt_id)

    def _recorded(self, folder: Path) -> str | None:
        return recorded(folder, "instance_id")

    def _record(self, folder: Path, instance_id: str) -> None:
        record(folder, "instance_id", instance_id)

    def _backend_id(self, instance_id: str) -> str:
        return f"{self._name}:{instance_id}"

    def _instances(self, attempt_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """This site's instance of each attempt that has one (API errors propagate).

        Should an attempt have several (it never should), the one recorded wins,
        then one still alive, then the latest launched.
        """
        found: dict[str, list[dict[str, Any]]] = {}
        for batch in _batches(list(dict.fromkeys(attempt_ids))):
            filters = [
                {"Name": f"tag:{_TAG_SITE}", "Values": [self._name]},
                {"Name": f"tag:{_TAG_ATTEMPT}", "Values": batch},
            ]
            page: dict[str, Any] = {}
            while True:
                more = {"NextToken": page["NextToken"]} if page.get("NextToken") else {}
                page = self._ec2.describe_instances(Filters=filters, **more)
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        attempt = _tags(instance).get(_TAG_ATTEMPT)
                        if attempt is not None:
                            found.setdefault(attempt, []).append(instance)
                if not page.get("NextToken"):
                    break
        return {a: self._pick(a, many) for a, many in found.items()}

    def _pick(self, attempt_id: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
        recorded = self._recorded(self._dir(attempt_id))

        def rank(i: dict[str, Any]) -> tuple[bool, bool, str]:
            alive = i.get("State", {}).get("Name") not in {"shutting-down", "terminated"}
            return (i["InstanceId"] == recorded, alive, str(i.get("LaunchTime", "")))

        return max(instances, key=rank)

    def _exit_code(self, attempt_id: str) -> int | None:
        """The exit status the boot script uploaded; None if none (API errors propagate)."""
        try:
            body = self._s3.get_object(
                Bucket=self.staging.bucket, Key=self.staging.key(attempt_id, "exit_code")
            )["Body"].read(32)
        except api_errors() as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise
        text = body.decode("ascii", "replace").strip()
        try:
            return int(text)
        except ValueError:
            return 1

    # --- the protocol ------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> LaunchResult:
        a = request.attempt_id
        folder = self._dir(a)
        with locked(folder):
            recorded = self._recorded(folder)
            if recorded is not None:
                return LaunchResult(a, True, self._backend_id(recorded))
            try:
                existing = self._instances([a]).get(a)
            except api_errors() as exc:
                # Cannot tell whether it runs already: launching now could run it twice.
                why = f"cannot ask EC2 whether the attempt runs already: {_describe(exc)}"
                return LaunchResult(a, False, error=why, retryable=True)
            if existing is not None:
                return self._launched(a, folder, existing["InstanceId"])
            refused = self._refusal(request)
            if refused is not None:
                return refused
            return self._run(request, folder)

    def _launched(self, attempt_id: str, folder: Path, instance_id: str) -> LaunchResult:
        self._record(folder, instance_id)
        return LaunchResult(attempt_id, True, self._backend_id(instance_id))

    def _refusal(self, request: LaunchRequest) -> LaunchResult | None:
        """What is wrong with the request itself (no site would take it); None if nothing."""
        a = request.attempt_id
        if not request.command:
            return LaunchResult(a, False, error="empty command")
        bad = bad_env_names(request.env)
        if bad:
            return LaunchResult(a, False, error=f"invalid environment names: {bad}")
        if request.nodes != 1:
            return LaunchResult(
                a, False, error=f"an EC2 site runs one node per attempt, not {request.nodes}"
            )
        size = len(self._user_data(request).encode())
        if size > USER_DATA_LIMIT:
            return LaunchResult(
                a,
                False,
                error=f"the command and environment make {size} bytes of user data; EC2 "
                f"takes at most {USER_DATA_LIMIT}: ship large values in the workdir instead",
            )
        return None

    def _run_params(self, request: LaunchRequest) -> dict[str, Any]:
        c = self.config
        a = request.attempt_id
        tags = [
            {"Key": _TAG_RUN, "Value": request.env.get("ARCHIPEL_RUN_ID", "")},
            {"Key": _TAG_ATTEMPT, "Value": a},
            {"Key": _TAG_SITE, "Value": self._name},
            {"Key": "Name", "Value": f"archipel-{a}"},
        ]
        params: dict[str, Any] = {
            "ImageId": c.image,
            "InstanceType": c.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": a[:64],
            "UserData": self._user_data(request),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if c.market == "spot":
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if c.market == "capacity-block":
            params["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
        if c.capacity_reservation:
            params["CapacityReservationSpecification"] = {
                "CapacityReservationTarget": {"CapacityReservationId": c.capacity_reservation}
            }
        if c.zone:
            params["Placement"] = {"AvailabilityZone": c.zone}
        if c.subnet:
            params["SubnetId"] = c.subnet
        if c.security_group:
            params["SecurityGroupIds"] = [c.security_group]
        if c.instance_profile:
            params["IamInstanceProfile"] = {"Name": c.instance_profile}
        if c.root_volume_gib:
            params["BlockDeviceMappings"] = [
                {
                    "DeviceName": self._root_device(),
                    "Ebs": {
                        "VolumeSize": c.root_volume_gib,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                    },
                }
            ]
        return params

    def _root_device(self) -> str:
        images = self._ec2.describe_images(ImageIds=[self.config.image])["Images"]
        return str(images[0].get("RootDeviceName") or "/dev/xvda") if images else "/dev/xvda"

    def _run(self, request: LaunchRequest, folder: Path) -> LaunchResult:
        a = request.attempt_id
        c = self.config
        home = home_of(request, self.staging)
        refused = None if home is None else send(self._s3, home, folder)
        if refused is not None:
            return LaunchResult(a, False, error=refused, retryable=True)
        refused = send_workdir(self._s3, self.staging, request)
        if refused is not None:
            return LaunchResult(a, False, error=refused, retryable=True)
        try:
            response = self._ec2.run_instances(**self._run_params(request))
        except api_errors() as exc:
            code = _error_code(exc)
            if not code or code.startswith(("Internal", "Unavailable", "ServiceUnavailable")):
                # the request may have been taken before the answer was lost: look again
                try:
                    again = self._instances([a]).get(a)
                except api_errors():
                    again = None
                if again is not None:
                    return self._launched(a, folder, again["InstanceId"])
            if code:
                error = launch_error(code, str(exc), c.instance_type, c.where)
            else:
                error = f"cannot reach EC2 in {c.region}: {_describe(exc)}"
            log.info("site %s: launch of %s refused: %s", self._name, a, error)
            return LaunchResult(a, False, error=error, retryable=True)
        return self._launched(a, folder, response["Instances"][0]["InstanceId"])

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        if not attempt_ids:
            return {}
        try:
            instances = self._instances(attempt_ids)
        except api_errors() as exc:
            reason = f"cannot query EC2 in {self.config.region}: {_describe(exc)}"
            return {a: Observation(a, AttemptState.UNOBSERVED, reason=reason) for a in attempt_ids}
        result: dict[str, Observation] = {}
        for a in attempt_ids:
            instance = instances.get(a)
            try:
                if instance is None:
                    result[a] = self._bring_back(self._forgotten(a))
                else:
                    result[a] = self._bring_back(self._from_instance(a, instance))
            except api_errors() as exc:
                reason = f"cannot read the exit status from S3: {_describe(exc)}"
                result[a] = Observation(a, AttemptState.UNOBSERVED, reason=reason)
        return result

    def _user_data(self, request: LaunchRequest) -> str:
        sync = self.config.checkpoint_sync_seconds
        return user_data(request, self.staging, self._name, sync_seconds=sync)

    def _bring_back(self, observation: Observation) -> Observation:
        folder = self._dir(observation.attempt_id)
        return bring_back(self._s3, folder, observation, self._name)

    def _from_instance(self, attempt_id: str, instance: dict[str, Any]) -> Observation:
        state = str(instance.get("State", {}).get("Name", ""))
        reason_code = str(instance.get("StateReason", {}).get("Code", ""))
        tags = _tags(instance)
        backend_id = self._backend_id(instance["InstanceId"])
        code = self._exit_code(attempt_id) if needs_exit_code(state) else None
        cancelled = _TAG_CANCELLED in tags or (self._dir(attempt_id) / "cancelled").exists()
        mapped, reason = instance_state(state, reason_code, code, cancelled)
        host = None
        if mapped is AttemptState.RUNNING:
            host = instance.get("PublicDnsName") or instance.get("PrivateIpAddress") or None
        return Observation(attempt_id, mapped, backend_id, code, reason, host)

    def _forgotten(self, attempt_id: str) -> Observation:
        """An attempt EC2 does not list: ours if recorded (EC2 forgets terminated
        instances after about an hour), else unknown."""
        folder = self._dir(attempt_id)
        instance_id = self._recorded(folder)
        if instance_id is None:
            return Observation(attempt_id, AttemptState.UNKNOWN)
        code = self._exit_code(attempt_id)
        cancelled = (folder / "cancelled").exists()
        mapped, reason = instance_state("terminated", "", code, cancelled)
        if mapped is AttemptState.PREEMPTED:
            reason = f"EC2 no longer lists instance {instance_id} and it left no exit status"
        return Observation(attempt_id, mapped, self._backend_id(instance_id), code, reason)

    def cancel(self, attempt_id: str) -> None:
        folder = self._dir(attempt_id)
        try:
            instance = self._instances([attempt_id]).get(attempt_id)
            if instance is None:
                return
            if instance.get("State", {}).get("Name") in {"shutting-down", "terminated"}:
                return
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "cancelled").touch()
            instance_id = instance["InstanceId"]
            self._ec2.create_tags(
                Resources=[instance_id], Tags=[{"Key": _TAG_CANCELLED, "Value": "true"}]
            )
            self._ec2.terminate_instances(InstanceIds=[instance_id])
        except api_errors() as exc:
            log.warning("site %s: cancelling %s failed: %s", self._name, attempt_id, exc)

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        """The output the boot script uploaded when the command ended (empty until then)."""
        key = self.staging.key(attempt_id, "output.log")
        try:
            body = self._s3.get_object(
                Bucket=self.staging.bucket,
                Key=key,
                Range=f"bytes={offset}-{offset + _LOG_LIMIT - 1}",
            )["Body"].read()
        except api_errors() as exc:
            if _error_code(exc) not in {"NoSuchKey", "InvalidRange", "404", "416"}:
                log.warning("site %s: reading the log of %s: %s", self._name, attempt_id, exc)
            return LogChunk(b"", offset)
        data = bytes(body)
        return LogChunk(data, offset + len(data))

    def health(self) -> SiteHealth:
        """Whether the region answers and offers the type; a healthy answer is kept for
        ``health_ttl`` seconds (the reconciler asks every round), an unhealthy one not."""
        now = time.monotonic()
        if self._healthy_until > now:
            return SiteHealth(True)
        health = self._ask_health()
        if health.healthy:
            self._healthy_until = now + self.config.health_ttl
        return health

    def _ask_health(self) -> SiteHealth:
        c = self.config
        try:
            zones = self._ec2.describe_availability_zones(
                **({"ZoneNames": [c.zone]} if c.zone else {})
            )["AvailabilityZones"]
            location = "availability-zone" if c.zone else "region"
            offers = self._ec2.describe_instance_type_offerings(
                LocationType=location,
                Filters=[
                    {"Name": "instance-type", "Values": [c.instance_type]},
                    {"Name": "location", "Values": [c.where]},
                ],
            )["InstanceTypeOfferings"]
        except api_errors() as exc:
            return SiteHealth(False, f"cannot reach EC2 in {c.region}: {_describe(exc)}")
        if not any(z.get("State") == "available" for z in zones):
            return SiteHealth(False, f"no availability zone of {c.where} is available")
        if not offers:
            return SiteHealth(False, f"{c.instance_type} is not offered in {c.where}")
        if c.capacity_reservation:
            return self._reservation_health(c.capacity_reservation)
        return SiteHealth(True)

    def _reservation_health(self, reservation: str) -> SiteHealth:
        """A site launching into a capacity reservation takes work only while it is
        ``active``: a Capacity Block is ``scheduled`` before its window and ``expired``
        after it, and a reservation may be cancelled."""
        try:
            found = self._ec2.describe_capacity_reservations(CapacityReservationIds=[reservation])[
                "CapacityReservations"
            ]
        except api_errors() as exc:
            why = f"cannot read capacity reservation {reservation}: {_describe(exc)}"
            return SiteHealth(False, why)
        if not found:
            return SiteHealth(False, f"capacity reservation {reservation} does not exist")
        state = found[0].get("State", "unknown")
        if state == "active":
            return SiteHealth(True)
        start, end = found[0].get("StartDate"), found[0].get("EndDate")
        window = f" (its window: {start} to {end})" if start and end else ""
        return SiteHealth(
            False,
            f"capacity reservation {reservation} is {state}{window}: instances launch into "
            "it only while it is active",
        )
