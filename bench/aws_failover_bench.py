"""AWS failover benchmark: from an EC2 capacity error or a spot interruption to running
on another site, through the real reconciler, on the emulator (moto on loopback).

Three scenarios, each repeated, with the server's default 1 s between rounds:

- **capacity**: the run's first choice is an EC2 site whose launch EC2 refuses with
  ``InsufficientInstanceCapacity``; measured from the refusal to the attempt launched on
  the next site (a fake backend);
- **interruption**: the run runs on the EC2 site with a 1 MiB checkpoint in S3; its
  instance is terminated from outside Archipel (what a spot interruption does; moto
  cannot give the spot reason, which the backend reads the same way); measured from the
  termination to the next attempt launched on the other site, its checkpoint home;
- **baseline, fake sites**: the same interruption between two in-memory fake sites, in the
  same run: the reconciler's own floor, without EC2 or S3.

The emulator answers on loopback in milliseconds: these figures are Archipel's share of
a failover (rounds, observation, S3 copies), not AWS's API latency or an instance's boot.

Run: .venv/bin/python bench/aws_failover_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from archipel.backends import Backend, Ec2Backend, Ec2Config, FakeBackend
from archipel.catalog import load_snapshot
from archipel.controlplane import Reconciler, Site, SitePlacer, SiteSpec, Store
from archipel.core import parse_workload
from archipel.policy import default_policy

REGION, BUCKET, IMAGE = "eu-west-1", "archipel-bench", "ami-03cf127a"
INTERVAL = 1.0  # the server's default seconds between rounds
SPEC: dict[str, Any] = {
    "name": "bench",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "public"},
    "run": {"command": ["python3", "train.py"], "max_restarts": 3},
}
SITES = [
    SiteSpec(
        name="first",
        backend="local",
        provider="aws",
        region=REGION,
        country="IE",
        accelerators="cpu:1",
        slots=4,
        price_per_hour=1,
    ),
    SiteSpec(
        name="second",
        backend="local",
        provider="scaleway",
        region="fr-par",
        country="FR",
        accelerators="cpu:1",
        slots=4,
        price_per_hour=2,
    ),
]


class Refusing:
    """A boto3 EC2 client whose RunInstances fails with a capacity error, timed."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.refused_at: float | None = None

    def __getattr__(self, name: str) -> Any:
        if name != "run_instances":
            return getattr(self.client, name)

        def refuse(**_: Any) -> Any:
            self.refused_at = time.monotonic()
            error = {"Code": "InsufficientInstanceCapacity", "Message": "none left (bench)"}
            raise ClientError({"Error": error}, "RunInstances")

        return refuse


def _client(url: str, service: str) -> Any:
    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=url)


def _ec2_site(url: str, home: Path, wrap: Callable[[Any], Any] = lambda c: c) -> Ec2Backend:
    config = Ec2Config(
        region=REGION,
        image=IMAGE,
        instance_type="t3.large",
        staging=f"s3://{BUCKET}/stage",
        endpoint_url=url,
        max_attempts=2,
    )
    clients = {"ec2": wrap(_client(url, "ec2")), "s3": _client(url, "s3")}
    return Ec2Backend("first", config, home / "first", clients=clients.__getitem__)


def _run_until(store: Store, run_id: str, done: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id}: not there within {seconds} s")
        time.sleep(0.005)


def once(kind: str, url: str) -> float:
    home = Path(tempfile.mkdtemp(prefix="archipel-failover-"))
    store = Store(f"sqlite:///{home / 'state.db'}")
    store.migrate()
    second = FakeBackend("second")
    refusing: Refusing | None = None
    first: Backend
    if kind == "capacity":
        refusing = Refusing(_client(url, "ec2"))
        first = _ec2_site(url, home, lambda _: refusing)
    elif kind == "interruption":
        first = _ec2_site(url, home)
    else:
        first = FakeBackend("first")
    sites = {"first": Site(SITES[0], first), "second": Site(SITES[1], second)}
    reconciler = Reconciler(
        store, sites, SitePlacer(SITES, load_snapshot(), default_policy()), home / "ck"
    )
    run = store.submit("bench", parse_workload(SPEC))
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            reconciler.step()
            stop.wait(INTERVAL)

    thread = threading.Thread(target=loop, daemon=True)

    def on_second() -> bool:
        attempts = store.attempts(run.id)
        return any(a.site == "second" and a.backend_id for a in attempts)

    try:
        thread.start()
        if kind == "capacity":
            assert refusing is not None
            _run_until(store, run.id, on_second)
            assert refusing.refused_at is not None
            return time.monotonic() - refusing.refused_at
        _run_until(store, run.id, lambda: store.get(run.id).state.value == "running")  # type: ignore[union-attr]
        attempt = f"{run.id}-a1"
        if kind == "interruption":
            s3, ec2 = _client(url, "s3"), _client(url, "ec2")
            s3.put_object(Bucket=BUCKET, Key=f"stage/checkpoints/{run.id}/state.bin",
                          Body=os.urandom(1 << 20))  # fmt: skip
            pages = ec2.describe_instances(
                Filters=[{"Name": "tag:archipel:attempt", "Values": [attempt]}]
            )["Reservations"]
            instance = pages[0]["Instances"][0]["InstanceId"]
            failed_at = time.monotonic()
            # terminated outside Archipel, as a spot interruption is: a preemption
            ec2.terminate_instances(InstanceIds=[instance])
            _run_until(store, run.id, on_second)
            assert (home / "ck" / run.id / "state.bin").stat().st_size == 1 << 20
        else:
            assert isinstance(first, FakeBackend)
            failed_at = time.monotonic()
            first.preempt(attempt, "bench: spot interruption")
            _run_until(store, run.id, on_second)
        return time.monotonic() - failed_at
    finally:
        stop.set()
        thread.join(10)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        os.environ[name] = value
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    _client(url, "s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; "
          f"{INTERVAL:g} s between rounds; {args.repeats} repeats each")  # fmt: skip
    print("scenario | median s | max s | each")
    try:
        for kind in ("capacity", "interruption", "baseline"):
            times = [once(kind, url) for _ in range(args.repeats)]
            each = ", ".join(f"{t:.2f}" for t in times)
            print(f"{kind} | {statistics.median(times):.2f} | {max(times):.2f} | {each}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
