"""Run attempts as SageMaker training jobs: one job per attempt, in one region.

One :class:`SageMakerBackend` is one site: a region, an execution role, a training
image (in ECR), on-demand or managed spot, and optionally one instance type (else
the type follows the accelerators the attempt was placed for, see
:data:`archipel.backends._sagemaker_states.INSTANCE_TYPES`). Credentials come from
the standard AWS chain, as for EC2 sites (:mod:`archipel.backends._aws`).

**Launch.** ``CreateTrainingJob`` named after the attempt (:func:`job_name`), tagged
``archipel:run``, ``archipel:attempt`` and ``archipel:site``, with
``StoppingCondition.MaxRuntimeInSeconds`` (and ``MaxWaitTimeInSeconds`` when spot),
``EnableManagedSpotTraining`` on a spot site, and the run's checkpoint prefix as
``CheckpointConfig.S3Uri``: the same prefix an EC2 site uses
(:mod:`archipel.backends._ec2_checkpoints`), mirrored out before the job starts and
brought home once it has ended, so a run moving between EC2, SageMaker and local
sites finds its checkpoint. SageMaker copies that prefix into
``/opt/ml/checkpoints`` (the command's ``ARCHIPEL_CHECKPOINT_DIR``) before the
command starts and copies the folder back while it runs. The command runs in the
image through a short shell wrapper (:data:`WRAPPER`): it unpacks the workdir
(an input channel from the staging location) into the attempt's folder, runs the
command there, and writes its exit status as the job's failure reason.

The launch is idempotent: a job name is unique in an account and region, and is
derived from the attempt id alone, so under a file lock on the attempt's folder the
recorded name answers first, then a job found by that name, and only then is the
job created; SageMaker itself refuses a second job of the same name.

**Observe.** ``DescribeTrainingJob`` per attempt; statuses map as
:mod:`archipel.backends._sagemaker_states` says. A failed call makes the attempt
``UNOBSERVED``. **Cancel**: tag the job ``archipel:cancelled`` and ``StopTrainingJob``.
**Logs**: the job's CloudWatch Logs stream (its first host's), read from an offset.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from archipel.backends._aws import ClientFactory, api_errors, default_clients, describe, error_code
from archipel.backends._ec2_checkpoints import bring_back, home_of, send, send_workdir
from archipel.backends._ec2_script import Staging, bad_env_names
from archipel.backends._files import attempt_folder, locked, record, recorded
from archipel.backends._protocol import (
    AttemptState,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)
from archipel.backends._sagemaker_states import INSTANCE_TYPES, job_state, launch_error

log = logging.getLogger("archipel.backends.sagemaker")

Market = Literal["on-demand", "spot"]

#: where SageMaker keeps a job's checkpoint in the container (``CheckpointConfig.LocalPath``)
CHECKPOINT_PATH = "/opt/ml/checkpoints"
#: the attempt's working directory in the container
ATTEMPT_DIR = "/opt/ml/archipel/work"
#: the command's wrapper (``/bin/sh -c WRAPPER archipel COMMAND...``): unpack the workdir
#: channel if there is one (exit status 125 if it cannot be), run the command in the
#: attempt's folder, write a failure's exit status where SageMaker reads the failure
#: reason. SageMaker takes at most 256 characters per entrypoint item.
WRAPPER = (
    "s=;d=$ARCHIPEL_ATTEMPT_DIR;f=/opt/ml/input/data/workdir/workdir.tar.gz;"
    "mkdir -p $d&&cd $d&&{ [ ! -f $f ]||tar -xzf $f --no-same-owner;}||s=125;"
    '[ "$s" ]||{ "$@";s=$?;};'
    '[ $s = 0 ]||echo "archipel: exit status $s">/opt/ml/output/failure;exit $s'
)
#: SageMaker's limits on a job's entrypoint arguments and environment
MAX_ARGUMENTS, MAX_ARGUMENT_CHARS = 100, 256
MAX_ENV, MAX_ENV_VALUE_CHARS = 100, 512
#: the longest a training job may run (and, on spot, wait), as SageMaker takes it
MAX_JOB_SECONDS = 28 * 86_400
#: where SageMaker sends a training job's output
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_LOG_LIMIT = 1 << 20
_TAG_RUN, _TAG_ATTEMPT, _TAG_SITE, _TAG_CANCELLED = (
    "archipel:run",
    "archipel:attempt",
    "archipel:site",
    "archipel:cancelled",
)
_NAME_OK = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_FINISHED = {"Completed", "Failed", "Stopped"}


@dataclass(frozen=True, slots=True)
class SageMakerConfig:
    """Where and how one SageMaker site runs training jobs (a ``backend: sagemaker`` site)."""

    region: str
    role_arn: str  # the job's execution role: reads the image, the staging bucket
    training_image: str  # an ECR image URI, with /bin/sh and tar
    staging: str  # s3://BUCKET[/PREFIX]: workdirs, outputs, the runs' checkpoints
    instance_type: str | None = None  # "ml.g5.xlarge"; None: from the attempt's accelerators
    market: Market = "on-demand"
    max_runtime_seconds: int = 86_400
    # managed spot: how long past the run time SageMaker may wait for spot capacity
    spot_wait_seconds: int = 3_600
    volume_gib: int = 50
    subnet: str | None = None
    security_group: str | None = None
    endpoint_url: str | None = None  # an emulator's, for tests; None: AWS's own
    max_attempts: int = 4  # tries of one API call (botocore's standard retry mode)
    health_ttl: float = 60.0  # seconds a healthy answer is kept

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(problem)

    def _problem(self) -> str | None:
        """What SageMaker would refuse in this configuration, said as what to change."""
        if self.instance_type is not None and not self.instance_type.startswith("ml."):
            return (
                f"instance_type {self.instance_type} is not a SageMaker type: write "
                f"ml.{self.instance_type}, or leave it out to follow the accelerators"
            )
        if self.market not in ("on-demand", "spot"):
            return f"a sagemaker site is on-demand or spot, not {self.market}"
        spot = self.market == "spot"
        longest = self.max_runtime_seconds + (self.spot_wait_seconds if spot else 0)
        if self.max_runtime_seconds < 60 or longest > MAX_JOB_SECONDS:
            return (
                f"max_runtime_seconds{' + spot_wait_seconds' if spot else ''} "
                f"must be between 60 and {MAX_JOB_SECONDS} (28 days), not {longest}"
            )
        if (self.subnet is None) != (self.security_group is None):
            return "a sagemaker site in a VPC needs both subnet and security_group (or neither)"
        return None

    @staticmethod
    def instance_type_for(accelerators: str | None) -> str | None:
        """The SageMaker type of one node offering ``MODEL:COUNT`` (None: a CPU slot), if
        known (:data:`archipel.backends._sagemaker_states.INSTANCE_TYPES`)."""
        if accelerators is None or accelerators.split(":", 1)[0].lower() == "cpu":
            return INSTANCE_TYPES[("cpu", 1)]
        model, _, count = accelerators.partition(":")
        try:
            return INSTANCE_TYPES.get((model, int(float(count or "1"))))
        except ValueError:
            return None


def job_name(attempt_id: str) -> str:
    """The training job of an attempt: ``archipel-<attempt id>`` when SageMaker takes that
    name (letters, digits and hyphens, at most 63), else a cut of it and a digest."""
    name = f"archipel-{attempt_id}"
    if _NAME_OK.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", attempt_id).strip("-")
    digest = hashlib.sha256(attempt_id.encode()).hexdigest()[:10]
    return f"archipel-{cleaned[:42]}-{digest}"


class SageMakerBackend:
    """SageMaker training jobs in one region as a site; a folder per attempt under
    ``state_dir``. ``clients`` makes the boto3 client of a service (``"sagemaker"``,
    ``"s3"``, ``"logs"``); tests pass one that injects faults and drives transitions."""

    def __init__(
        self,
        name: str,
        config: SageMakerConfig,
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
        self._sm = make("sagemaker")
        self._s3 = make("s3")
        self._logs = make("logs")
        self._healthy_until = 0.0

    def __repr__(self) -> str:
        c = self.config
        kind = c.instance_type or "by accelerators"
        return f"SageMakerBackend({self._name!r}, {c.region}, {kind}, {c.market})"

    @property
    def name(self) -> str:
        return self._name

    # --- plumbing ----------------------------------------------------------------------

    def _dir(self, attempt_id: str) -> Path:
        return attempt_folder(self.state_dir, attempt_id)

    def _backend_id(self, attempt_id: str) -> str:
        return f"{self._name}:{job_name(attempt_id)}"

    def _job(self, attempt_id: str) -> dict[str, Any] | None:
        """The attempt's training job as SageMaker describes it; None if there is none
        (other API errors propagate)."""
        try:
            return dict(self._sm.describe_training_job(TrainingJobName=job_name(attempt_id)))
        except api_errors() as exc:
            text = str(exc).lower()
            if error_code(exc) in {"ValidationException", "ResourceNotFound"} and (
                "not found" in text or "could not find" in text or "does not exist" in text
            ):
                return None
            raise

    def _instance_type(self, request: LaunchRequest) -> str | None:
        return self.config.instance_type or self.config.instance_type_for(request.accelerators)

    # --- the protocol ------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> LaunchResult:
        a = request.attempt_id
        folder = self._dir(a)
        with locked(folder):
            if recorded(folder, "job") is not None:
                return LaunchResult(a, True, self._backend_id(a))
            try:
                existing = self._job(a)
            except api_errors() as exc:
                why = f"cannot ask SageMaker whether the attempt runs already: {describe(exc)}"
                return LaunchResult(a, False, error=why, retryable=True)
            if existing is not None:
                return self._launched(a, folder)
            refused = self._refusal(request)
            if refused is not None:
                return refused
            return self._create(request, folder)

    def _launched(self, attempt_id: str, folder: Path) -> LaunchResult:
        record(folder, "job", job_name(attempt_id))
        return LaunchResult(attempt_id, True, self._backend_id(attempt_id))

    def _refusal(self, request: LaunchRequest) -> LaunchResult | None:
        """What is wrong with the request for this site; None if nothing. A request no
        site could run is refused for good; a type this site cannot name, retryably."""
        a = request.attempt_id
        if not request.command:
            return LaunchResult(a, False, error="empty command")
        bad = bad_env_names(request.env)
        if bad:
            return LaunchResult(a, False, error=f"invalid environment names: {bad}")
        env = self._environment(request, checkpoint=True)
        long_values = sorted(k for k, v in env.items() if len(v) > MAX_ENV_VALUE_CHARS)
        if len(env) > MAX_ENV or long_values:
            why = (
                f"SageMaker takes at most {MAX_ENV} environment variables of at most "
                f"{MAX_ENV_VALUE_CHARS} characters ({len(env)} given; too long: "
                f"{long_values or 'none'}): ship large values in the workdir instead"
            )
            return LaunchResult(a, False, error=why)
        args = list(request.command)
        if len(args) > MAX_ARGUMENTS or any(len(x) > MAX_ARGUMENT_CHARS for x in args):
            why = (
                f"SageMaker takes a command of at most {MAX_ARGUMENTS} arguments of at most "
                f"{MAX_ARGUMENT_CHARS} characters: put a longer one in a script in the workdir"
            )
            return LaunchResult(a, False, error=why)
        if self._instance_type(request) is None:
            why = (
                f"site {self._name} names no instance type and knows none with "
                f"{request.accelerators}: give the site an instance_type"
            )
            return LaunchResult(a, False, error=why, retryable=True)
        return None

    def _environment(self, request: LaunchRequest, checkpoint: bool) -> dict[str, str]:
        env = {**request.env, "ARCHIPEL_ATTEMPT_ID": request.attempt_id}
        env["ARCHIPEL_ATTEMPT_DIR"] = ATTEMPT_DIR
        if checkpoint and home_of(request, self.staging) is not None:
            env["ARCHIPEL_CHECKPOINT_DIR"] = CHECKPOINT_PATH
        return env

    def job_params(self, request: LaunchRequest) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request of an attempt (see the module docstring)."""
        c = self.config
        a = request.attempt_id
        home = home_of(request, self.staging)
        stopping = {"MaxRuntimeInSeconds": c.max_runtime_seconds}
        params: dict[str, Any] = {
            "TrainingJobName": job_name(a),
            "RoleArn": c.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": c.training_image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ["/bin/sh", "-c", WRAPPER, "archipel"],
                "ContainerArguments": list(request.command),
            },
            "ResourceConfig": {
                "InstanceType": self._instance_type(request),
                "InstanceCount": request.nodes,
                "VolumeSizeInGB": c.volume_gib,
            },
            "OutputDataConfig": {"S3OutputPath": self.staging.uri(a, "output")},
            "StoppingCondition": stopping,
            "Environment": self._environment(request, checkpoint=True),
            "Tags": [
                {"Key": _TAG_RUN, "Value": request.env.get("ARCHIPEL_RUN_ID", "")},
                {"Key": _TAG_ATTEMPT, "Value": a},
                {"Key": _TAG_SITE, "Value": self._name},
            ],
        }
        if c.market == "spot":
            params["EnableManagedSpotTraining"] = True
            stopping["MaxWaitTimeInSeconds"] = c.max_runtime_seconds + c.spot_wait_seconds
        if home is not None:
            params["CheckpointConfig"] = {"S3Uri": home.uri, "LocalPath": CHECKPOINT_PATH}
        if request.files is not None:
            source = {
                "S3DataType": "S3Prefix",
                "S3Uri": self.staging.uri(a, "workdir.tar.gz"),
                "S3DataDistributionType": "FullyReplicated",
            }
            params["InputDataConfig"] = [
                {"ChannelName": "workdir", "DataSource": {"S3DataSource": source}}
            ]
        if c.subnet and c.security_group:
            params["VpcConfig"] = {"Subnets": [c.subnet], "SecurityGroupIds": [c.security_group]}
        return params

    def _create(self, request: LaunchRequest, folder: Path) -> LaunchResult:
        a = request.attempt_id
        home = home_of(request, self.staging)
        refused = None if home is None else send(self._s3, home, folder)
        if refused is not None:
            return LaunchResult(a, False, error=refused, retryable=True)
        refused = send_workdir(self._s3, self.staging, request)
        if refused is not None:
            return LaunchResult(a, False, error=refused, retryable=True)
        try:
            self._sm.create_training_job(**self.job_params(request))
        except api_errors() as exc:
            return self._refused(request, folder, exc)
        return self._launched(a, folder)

    def _refused(self, request: LaunchRequest, folder: Path, exc: Exception) -> LaunchResult:
        """A failed ``CreateTrainingJob``: the job may exist anyway (its name is taken, or
        the answer was lost), else a retryable refusal naming the reason."""
        a = request.attempt_id
        code = error_code(exc)
        taken = code == "ResourceInUse" or "unique" in str(exc).lower()
        if taken or not code or code.startswith(("Internal", "ServiceUnavailable")):
            try:
                again = self._job(a)
            except api_errors():
                again = None
            if again is not None:
                return self._launched(a, folder)
        instance_type = self._instance_type(request) or "-"
        if code:
            error = launch_error(code, str(exc), instance_type, self.config.region)
        else:
            error = f"cannot reach SageMaker in {self.config.region}: {describe(exc)}"
        log.info("site %s: launch of %s refused: %s", self._name, a, error)
        return LaunchResult(a, False, error=error, retryable=True)

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        result: dict[str, Observation] = {}
        for a in dict.fromkeys(attempt_ids):
            try:
                result[a] = self._observe_one(a)
            except api_errors() as exc:
                reason = f"cannot query SageMaker in {self.config.region}: {describe(exc)}"
                result[a] = Observation(a, AttemptState.UNOBSERVED, reason=reason)
        return result

    def _observe_one(self, attempt_id: str) -> Observation:
        job = self._job(attempt_id)
        if job is None:
            return Observation(attempt_id, AttemptState.UNKNOWN)
        status = str(job.get("TrainingJobStatus", ""))
        secondary = str(job.get("SecondaryStatus", ""))
        cancelled = status in {"Stopping", "Stopped"} and self._cancelled(attempt_id, job)
        state, reason, code = job_state(
            status, secondary, str(job.get("FailureReason", "")), cancelled
        )
        seen = Observation(attempt_id, state, self._backend_id(attempt_id), code, reason)
        return bring_back(self._s3, self._dir(attempt_id), seen, self._name)

    def _cancelled(self, attempt_id: str, job: Mapping[str, Any]) -> bool:
        """Whether Archipel stopped the job: marked here, or tagged by another server."""
        if (self._dir(attempt_id) / "cancelled").exists():
            return True
        tags = self._sm.list_tags(ResourceArn=job["TrainingJobArn"]).get("Tags", [])
        return any(t.get("Key") == _TAG_CANCELLED for t in tags)

    def cancel(self, attempt_id: str) -> None:
        folder = self._dir(attempt_id)
        try:
            job = self._job(attempt_id)
            if job is None or job.get("TrainingJobStatus") in _FINISHED:
                return
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "cancelled").touch()
            self._sm.add_tags(
                ResourceArn=job["TrainingJobArn"], Tags=[{"Key": _TAG_CANCELLED, "Value": "true"}]
            )
            self._sm.stop_training_job(TrainingJobName=job_name(attempt_id))
        except api_errors() as exc:
            log.warning("site %s: cancelling %s failed: %s", self._name, attempt_id, exc)

    def logs(self, attempt_id: str, offset: int = 0) -> LogChunk:
        """The job's output as CloudWatch Logs holds it (its first host's stream), from
        ``offset``: each event a line. Read from the stream's start on every call."""
        try:
            data = self._log_bytes(job_name(attempt_id), offset + _LOG_LIMIT)
        except api_errors() as exc:
            if error_code(exc) != "ResourceNotFoundException":
                log.warning("site %s: reading the log of %s: %s", self._name, attempt_id, exc)
            return LogChunk(b"", offset)
        chunk = data[offset : offset + _LOG_LIMIT]
        return LogChunk(chunk, offset + len(chunk))

    def _log_bytes(self, job: str, wanted: int) -> bytes:
        streams = self._logs.describe_log_streams(
            logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/"
        ).get("logStreams", [])
        if not streams:
            return b""
        stream = min(s["logStreamName"] for s in streams)  # algo-1 first
        data = bytearray()
        token: str | None = None
        while len(data) < wanted:
            more = {"nextToken": token} if token else {}
            page = self._logs.get_log_events(
                logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True, **more
            )
            for event in page.get("events", []):
                data += str(event.get("message", "")).encode() + b"\n"
            if not page.get("events") or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]
        return bytes(data)

    def health(self) -> SiteHealth:
        """Whether SageMaker answers in the region with these credentials; a healthy
        answer is kept for ``health_ttl`` seconds, an unhealthy one not."""
        now = time.monotonic()
        if self._healthy_until > now:
            return SiteHealth(True)
        try:
            self._sm.list_training_jobs(MaxResults=1)
        except api_errors() as exc:
            return SiteHealth(
                False, f"cannot reach SageMaker in {self.config.region}: {describe(exc)}"
            )
        self._healthy_until = now + self.config.health_ttl
        return SiteHealth(True)
