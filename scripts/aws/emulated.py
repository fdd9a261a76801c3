"""The emulated AWS account of the docs' walkthroughs: make its bucket, list its instances.

    python scripts/aws/emulated.py bucket s3://archipel-demo --region eu-west-1
    python scripts/aws/emulated.py instances --region eu-west-1

Talks to the emulator at ``--endpoint-url`` (default http://127.0.0.1:5123, where the
walkthrough starts moto) with the emulator's dummy credentials: it never reaches AWS.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import boto3

DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def client(service: str, region: str, endpoint: str) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint, **DUMMY
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["bucket", "instances"])
    parser.add_argument("bucket", nargs="?", help="s3://NAME, for `bucket`")
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--endpoint-url", default="http://127.0.0.1:5123")
    args = parser.parse_args()
    if args.what == "bucket":
        if not args.bucket or not args.bucket.startswith("s3://"):
            parser.error("bucket: give it as s3://NAME")
        name = args.bucket.removeprefix("s3://").split("/", 1)[0]
        client("s3", args.region, args.endpoint_url).create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": args.region}
        )
        print(f"bucket {name} in {args.region}")
        return 0
    pages = client("ec2", args.region, args.endpoint_url).describe_instances()["Reservations"]
    instances = [i for r in pages for i in r["Instances"]]
    for i in sorted(instances, key=lambda i: i["InstanceId"]):
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        attempt = tags.get("archipel:attempt", "-")
        print(f"{i['InstanceId']}  {i['State']['Name']:<10} {i['InstanceType']:<12} {attempt}")
    if not instances:
        print("no instance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
