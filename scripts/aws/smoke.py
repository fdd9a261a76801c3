"""A smoke test of an EC2 or SageMaker site on a real AWS account (see docs/aws.md).

Launches one attempt through :class:`archipel.backends.Ec2Backend` (``--kind ec2``, the
default: the smallest NVIDIA GPU instance) or :class:`archipel.backends.SageMakerBackend`
(``--kind sagemaker``: a training job on the smallest GPU type), runs ``nvidia-smi`` and
sleeps two minutes on it, waits for the outcome, then makes sure nothing is left
running: the attempt is cancelled if it has not finished within ``--timeout``, and no
instance or volume tagged with it (EC2), or no job still in progress (SageMaker),
remains. Prints what it sees; exits 0 when the attempt succeeded and nothing is left,
1 otherwise, 2 when it cannot start (no credentials: nothing is launched).

Credentials come from the standard AWS chain (``AWS_PROFILE``, the environment, an
instance role); this script reads none itself and prints none. It costs a few cents.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from archipel.backends import (
    AttemptState,
    Backend,
    Ec2Backend,
    Ec2Config,
    LaunchRequest,
    Observation,
    SageMakerBackend,
    SageMakerConfig,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=["ec2", "sagemaker"], default="ec2")
    p.add_argument("--region", required=True)
    p.add_argument("--staging", required=True, help="s3://BUCKET/PREFIX, in that region")
    p.add_argument("--image", help="ec2: an AMI with the AWS CLI and a GPU driver")
    p.add_argument("--instance-profile", help="ec2: lets the instance use the staging")
    p.add_argument("--zone", help="ec2: one availability zone")
    p.add_argument("--capacity-reservation", help="ec2: a reservation or Capacity Block id")
    p.add_argument("--role-arn", help="sagemaker: the job's execution role")
    p.add_argument("--training-image", help="sagemaker: an ECR image with /bin/sh and tar")
    p.add_argument("--instance-type", help="default: g4dn.xlarge (ec2), ml.g4dn.xlarge")
    p.add_argument("--market", choices=["on-demand", "spot", "capacity-block"], default="on-demand")
    p.add_argument("--seconds", type=int, default=120, help="how long the command sleeps")
    p.add_argument("--timeout", type=float, default=900, help="seconds before giving up")
    p.add_argument("--endpoint-url", help="an emulator's URL instead of AWS")
    return p


def no_credentials() -> bool:
    """Whether the standard chain finds no credentials (resolved, never printed)."""
    import boto3

    return boto3.session.Session().get_credentials() is None


def site(args: argparse.Namespace, state: Path) -> Ec2Backend | SageMakerBackend:
    if args.kind == "sagemaker":
        config = SageMakerConfig(
            region=args.region,
            role_arn=args.role_arn,
            training_image=args.training_image,
            staging=args.staging,
            instance_type=args.instance_type or "ml.g4dn.xlarge",
            market=args.market,
            max_runtime_seconds=args.seconds + 900,
            endpoint_url=args.endpoint_url,
        )
        return SageMakerBackend("smoke", config, state)
    return Ec2Backend(
        "smoke",
        Ec2Config(
            region=args.region,
            image=args.image,
            instance_type=args.instance_type or "g4dn.xlarge",
            staging=args.staging,
            market=args.market,
            zone=args.zone,
            capacity_reservation=args.capacity_reservation,
            instance_profile=args.instance_profile,
            endpoint_url=args.endpoint_url,
        ),
        state,
    )


def main() -> int:
    p = parser()
    args = p.parse_args()
    if args.kind == "ec2" and not args.image:
        p.error("--kind ec2 needs --image")
    if args.kind == "sagemaker" and not (args.role_arn and args.training_image):
        p.error("--kind sagemaker needs --role-arn and --training-image")
    if args.kind == "sagemaker" and args.market == "capacity-block":
        p.error("--market capacity-block is for --kind ec2")
    if no_credentials():
        print(
            "smoke: no AWS credentials in the standard chain (AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an instance role): nothing launched",
            file=sys.stderr,
        )
        return 2
    try:
        backend = site(args, Path(tempfile.mkdtemp(prefix="archipel-smoke-")))
    except ValueError as exc:
        p.error(str(exc))
    print(f"health: {backend.health()}")
    attempt = f"smoke-{uuid.uuid4().hex[:12]}"
    command = ["/bin/sh", "-c", f"nvidia-smi -L; sleep {args.seconds}; echo done"]
    result = backend.launch(LaunchRequest(attempt, command, {"ARCHIPEL_RUN_ID": attempt}))
    print(f"launch: {result}")
    if not result.ok:
        return 1
    finished = wait(backend, attempt, args.timeout)
    deadline = time.monotonic() + 300
    if isinstance(backend, SageMakerBackend):
        left = _jobs_left(backend, attempt, deadline)
    else:
        left = _left_behind(backend, attempt, deadline)
    print(f"output: {backend.logs(attempt).data.decode(errors='replace')!r}")
    print(f"left behind: {left or 'nothing'}")
    ok = finished is not None and finished.state is AttemptState.SUCCEEDED
    return 0 if ok and not left else 1


def wait(backend: Backend, attempt: str, timeout: float) -> Observation | None:
    """The attempt's end, or None (then it is cancelled) if it has not ended in time."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            obs = backend.observe([attempt])[attempt]
            print(f"{time.strftime('%H:%M:%S')} {obs.state.value} {obs.reason or ''}")
            if obs.state.finished:
                return obs
            time.sleep(min(10, max(0.0, deadline - time.monotonic())))
    except BaseException:
        backend.cancel(attempt)
        raise
    print(f"not finished within {timeout:.0f} s: cancelling")
    backend.cancel(attempt)
    return None


def _left_behind(backend: Ec2Backend, attempt: str, deadline: float) -> list[str]:
    """Instances not yet terminated and volumes still there, tagged with the attempt."""
    tag = [{"Name": "tag:archipel:attempt", "Values": [attempt]}]
    ec2 = backend._ec2
    while True:
        pages = ec2.describe_instances(Filters=tag)["Reservations"]
        alive = [
            i["InstanceId"]
            for r in pages
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ]
        volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
        if (not alive and not volumes) or time.monotonic() > deadline:
            return alive + volumes
        time.sleep(10)


def _jobs_left(backend: SageMakerBackend, attempt: str, deadline: float) -> list[str]:
    """The attempt's training job, while it is still in progress or stopping."""
    while True:
        job: dict[str, Any] | None = backend._job(attempt)
        status = "" if job is None else str(job.get("TrainingJobStatus"))
        if status not in {"InProgress", "Stopping"} or time.monotonic() > deadline:
            return [] if status not in {"InProgress", "Stopping"} else [f"job {status}"]
        time.sleep(10)


if __name__ == "__main__":
    sys.exit(main())
