"""A smoke test of an EC2 site on a real AWS account (see docs/aws.md).

Launches one instance through :class:`archipel.backends.Ec2Backend` (the smallest
NVIDIA GPU type by default), runs ``nvidia-smi`` and sleeps two minutes on it,
waits for the exit status, then makes sure nothing is left: the instance is
terminated (cancelled if it has not finished within ``--timeout``) and no instance
or volume tagged with the attempt remains. Prints what it sees; exits 0 when the
attempt succeeded and nothing is left, 1 otherwise.

Credentials come from the standard AWS chain (``AWS_PROFILE``, the environment,
an instance role); this script reads none itself. It costs a few cents.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from archipel.backends import AttemptState, Ec2Backend, Ec2Config, LaunchRequest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--image", required=True, help="an AMI with the AWS CLI and a GPU driver")
    parser.add_argument("--staging", required=True, help="s3://BUCKET/PREFIX, in that region")
    parser.add_argument("--instance-profile", help="lets the instance use the staging")
    parser.add_argument("--instance-type", default="g4dn.xlarge")
    parser.add_argument("--market", choices=["on-demand", "spot"], default="on-demand")
    parser.add_argument("--zone")
    parser.add_argument("--seconds", type=int, default=120, help="how long the command sleeps")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before giving up")
    parser.add_argument("--endpoint-url", help="an emulator's URL instead of AWS")
    args = parser.parse_args()

    config = Ec2Config(
        region=args.region,
        image=args.image,
        instance_type=args.instance_type,
        staging=args.staging,
        market=args.market,
        zone=args.zone,
        instance_profile=args.instance_profile,
        endpoint_url=args.endpoint_url,
    )
    state = Path(tempfile.mkdtemp(prefix="archipel-smoke-"))
    backend = Ec2Backend("smoke", config, state)
    print(f"health: {backend.health()}")
    attempt = f"smoke-{uuid.uuid4().hex[:12]}"
    command = ["/bin/sh", "-c", f"nvidia-smi -L; sleep {args.seconds}; echo done"]
    result = backend.launch(LaunchRequest(attempt, command, {"ARCHIPEL_RUN_ID": attempt}))
    print(f"launch: {result}")
    if not result.ok:
        return 1
    finished = None
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            obs = backend.observe([attempt])[attempt]
            print(f"{time.strftime('%H:%M:%S')} {obs.state.value} {obs.reason or ''}")
            if obs.state.finished:
                finished = obs
                break
            time.sleep(10)
    finally:
        if finished is None:
            print(f"not finished within {args.timeout:.0f} s: cancelling")
            backend.cancel(attempt)
        left = _left_behind(backend, attempt, deadline=time.monotonic() + 300)
    print(f"output: {backend.logs(attempt).data.decode(errors='replace')!r}")
    print(f"left behind: {left or 'nothing'}")
    ok = finished is not None and finished.state is AttemptState.SUCCEEDED
    return 0 if ok and not left else 1


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


if __name__ == "__main__":
    sys.exit(main())
