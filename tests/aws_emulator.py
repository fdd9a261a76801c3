"""An AWS emulator (moto's server mode) on a loopback port, and clients that inject faults.

:func:`emulator` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 (a free port)
and stops it when the caller is done. :func:`aws_environment` gives boto3 dummy
credentials and keeps it away from any real ones (no profile, no config or
credentials file, no instance metadata). :class:`FaultyClient` wraps a boto3 client:
queued errors are raised by the named call instead of calling the emulator, and an
instance's state reason can be overridden (moto cannot interrupt a spot instance).

SageMaker on moto creates a training job already ``Completed`` and has no
``StopTrainingJob``: :class:`TrainingJobs` is the thin layer over it that the SageMaker
tests drive transitions through. A job it creates (on moto, for real) is answered
``InProgress``/``Training`` until the test moves it (:meth:`TrainingJobs.move`: a spot
interruption, a failure, a completion), and ``StopTrainingJob`` is answered by the
layer (``Stopping``, then ``Stopped``); everything else is moto's own answer.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from archipel.backends import Ec2Backend, Ec2Config, SageMakerBackend, SageMakerConfig

REGION = "eu-west-1"
BUCKET = "archipel-test"
INSTANCE_TYPE = "g4dn.xlarge"
#: one of the Amazon images moto knows in every region (asking for its whole list takes seconds)
IMAGE = "ami-03cf127a"
#: a SageMaker site's execution role and training image (moto checks neither)
ROLE = "arn:aws:iam::123456789012:role/archipel-training"
TRAINING_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/archipel-train:1"

#: what boto3 finds in the environment during these tests: dummy keys only
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_ENV.items():
        monkeypatch.setenv(name, value)


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """moto in server mode on a free loopback port: its URL while the block runs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client_error(code: str, operation: str, message: str = "injected by the test") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@dataclass
class FaultyClient:
    """A boto3 client whose calls may fail on demand (see the module docstring)."""

    client: Any
    faults: dict[str, list[Exception]] = field(default_factory=dict)
    # operations done by the emulator whose answer is then lost (replaced by this error)
    lost_answers: dict[str, Exception] = field(default_factory=dict)
    state_reasons: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    # the arguments of each operation's last call, as the emulator received them
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fail(self, operation: str, *errors: Exception) -> None:
        self.faults.setdefault(operation, []).extend(errors)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.sent[name] = kwargs
            queued = self.faults.get(name)
            if queued:
                raise queued.pop(0)
            answer = self.answer(name, attr, *args, **kwargs)
            if name in self.lost_answers:
                raise self.lost_answers.pop(name)
            if name == "describe_instances" and self.state_reasons:
                for reservation in answer.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        code = self.state_reasons.get(instance["InstanceId"])
                        if code is not None:
                            instance["StateReason"] = {"Code": code, "Message": code}
            return answer

        return call

    def answer(self, name: str, attr: Any, *args: Any, **kwargs: Any) -> Any:
        """The answer of one call (the emulator's; a subclass may stand in for it)."""
        return attr(*args, **kwargs)


@dataclass
class TrainingJobs(FaultyClient):
    """A SageMaker client on the emulator whose jobs' statuses the test drives (see the
    module docstring): job name -> the status fields answered instead of moto's."""

    statuses: dict[str, dict[str, str]] = field(default_factory=dict)

    def move(self, name: str, status: str, secondary: str, failure: str = "") -> None:
        self.statuses[name] = {"TrainingJobStatus": status, "SecondaryStatus": secondary}
        if failure:
            self.statuses[name]["FailureReason"] = failure

    def answer(self, name: str, attr: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "stop_training_job":  # moto has none: the layer answers
            job = kwargs["TrainingJobName"]
            if self.statuses.get(job, {}).get("TrainingJobStatus") == "InProgress":
                self.move(job, "Stopping", "Stopping")
            return {}
        answer = attr(*args, **kwargs)
        if name == "create_training_job":
            self.move(kwargs["TrainingJobName"], "InProgress", "Training")
        if name == "describe_training_job":
            job = kwargs["TrainingJobName"]
            answer.update(self.statuses.get(job, {}))
            if answer["TrainingJobStatus"] == "Stopping":  # stopped by the next answer
                self.move(job, "Stopped", "Stopped")
        return answer


@dataclass
class EmulatedSageMaker:
    """A SageMaker site on the emulator, the clients it uses, and a plain S3 client."""

    backend: SageMakerBackend
    sagemaker: TrainingJobs
    s3: FaultyClient
    logs: FaultyClient


def make_sagemaker_site(
    url: str, state_dir: Path, name: str | None = None, **options: Any
) -> EmulatedSageMaker:
    """A :class:`SageMakerBackend` on the emulator, with its staging bucket."""
    name = name or f"sm-{uuid.uuid4().hex[:8]}"
    s3 = plain("s3", url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = SageMakerConfig(
        **{
            "region": REGION,
            "role_arn": ROLE,
            "training_image": TRAINING_IMAGE,
            "staging": f"s3://{BUCKET}/stage",
            "endpoint_url": url,
            "max_attempts": 2,
            **options,
        }
    )
    faulty = {
        "sagemaker": TrainingJobs(plain("sagemaker", url)),
        "s3": FaultyClient(s3),
        "logs": FaultyClient(plain("logs", url)),
    }
    backend = SageMakerBackend(name, config, state_dir, clients=faulty.__getitem__)
    return EmulatedSageMaker(backend, faulty["sagemaker"], faulty["s3"], faulty["logs"])


@dataclass
class Emulated:
    """An EC2 site on the emulator, the clients it uses, and a plain client to check with."""

    backend: Ec2Backend
    ec2: FaultyClient
    s3: FaultyClient
    check: Any  # an EC2 client that injects nothing

    def instances(self, *states: str) -> list[dict[str, Any]]:
        """Instances of the site (in these states, or all)."""
        filters = [{"Name": "tag:archipel:site", "Values": [self.backend.name]}]
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        pages = self.check.describe_instances(Filters=filters)["Reservations"]
        return [i for r in pages for i in r["Instances"]]

    def interrupt(self) -> str:
        """What a spot interruption looks like to the backend, for the site's one running
        instance (moto cannot interrupt: terminate it, and answer with AWS's reason); its id."""
        (instance,) = self.instances("running")
        self.check.terminate_instances(InstanceIds=[instance["InstanceId"]])
        self.ec2.state_reasons[instance["InstanceId"]] = "Server.SpotInstanceTermination"
        return str(instance["InstanceId"])

    def volumes(self) -> list[dict[str, Any]]:
        filters = [{"Name": "tag:archipel:site", "Values": [self.backend.name]}]
        return list(self.check.describe_volumes(Filters=filters)["Volumes"])


@functools.cache
def plain(service: str, url: str) -> Any:
    """A boto3 client of the emulator (made once: making one takes a third of a second)."""
    import boto3

    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=url)


def make_site(url: str, state_dir: Path, name: str | None = None, **options: Any) -> Emulated:
    """An :class:`Ec2Backend` on the emulator, with a staging bucket and an Amazon image.

    Each site gets a name of its own unless given one: its instances are told apart
    by their ``archipel:site`` tag, so tests share one emulator without a reset.
    """
    name = name or f"aws-{uuid.uuid4().hex[:8]}"
    check, s3 = plain("ec2", url), plain("s3", url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = Ec2Config(
        **{
            "region": REGION,
            "image": IMAGE,
            "instance_type": INSTANCE_TYPE,
            "staging": f"s3://{BUCKET}/stage",
            "root_volume_gib": 50,
            "endpoint_url": url,
            "max_attempts": 2,
            **options,
        }
    )
    faulty = {"ec2": FaultyClient(check), "s3": FaultyClient(s3)}
    clients: Callable[[str], Any] = faulty.__getitem__
    backend = Ec2Backend(name, config, state_dir, clients=clients)
    return Emulated(backend, faulty["ec2"], faulty["s3"], check)
