"""SageMaker sites: the contract on an emulator, the job each attempt asks for, idempotence,
statuses, interruptions, errors, logs, and the command's wrapper run here.

The emulator is moto in server mode on a loopback port (``tests/aws_emulator.py``), with
dummy credentials. moto creates every training job already ``Completed`` and has no
``StopTrainingJob``: the SageMaker client of these tests (:class:`TrainingJobs`) holds a
job it created in ``Training`` until a test moves it, and answers ``StopTrainingJob``
itself. Every other call, creating, describing, tagging, the staging bucket and the
logs, is moto's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.aws_emulator import (
    BUCKET,
    REGION,
    ROLE,
    TRAINING_IMAGE,
    EmulatedSageMaker,
    aws_environment,
    client_error,
    make_sagemaker_site,
    make_site,
    plain,
)

from archipel.backends import AttemptState, LaunchRequest, SageMakerBackend, SageMakerConfig
from archipel.backends._sagemaker import (
    CHECKPOINT_PATH,
    LOG_GROUP,
    MAX_ARGUMENT_CHARS,
    WRAPPER,
    job_name,
)
from archipel.backends._sagemaker_states import exit_status, job_state

from .contract import BackendContract, ShellHarness, new_id, workdir_archive


@pytest.fixture
def sm(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmulatedSageMaker:
    """A SageMaker site on the emulator, boto3 seeing dummy credentials only."""
    aws_environment(monkeypatch)
    return make_sagemaker_site(moto_url, tmp_path / "site")


@pytest.fixture
def harness(sm: EmulatedSageMaker) -> ShellHarness:
    return ShellHarness(sm.backend, timeout=5)


class TestSageMakerBackend(BackendContract):
    """The contract an emulator can check, with the job held in ``Training`` and
    ``StopTrainingJob`` answered by the test's layer (see the module docstring). As for
    EC2, no command runs, so RunningBackendContract is not claimed; the wrapper that
    would run it is tested on its own below."""


def _request(a: str, **kw: Any) -> LaunchRequest:
    return LaunchRequest(
        a, ["python", "train.py", "--epochs", "3"], {"ARCHIPEL_RUN_ID": "r-1"}, **kw
    )


def _tags(sm: EmulatedSageMaker, a: str) -> dict[str, str]:
    arn = plain("sagemaker", sm.backend.config.endpoint_url).describe_training_job(
        TrainingJobName=job_name(a)
    )["TrainingJobArn"]
    tags = sm.sagemaker.client.list_tags(ResourceArn=arn)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


# --- the job an attempt asks for ----------------------------------------------------------


def test_a_launch_creates_one_tagged_job_running_the_command(sm: EmulatedSageMaker) -> None:
    a = new_id()
    result = sm.backend.launch(_request(a))
    assert result.ok and result.backend_id == f"{sm.backend.name}:archipel-{a}"
    sent = sm.sagemaker.sent["create_training_job"]
    assert sent["TrainingJobName"] == f"archipel-{a}"
    assert sent["RoleArn"] == ROLE
    spec = sent["AlgorithmSpecification"]
    assert spec["TrainingImage"] == TRAINING_IMAGE
    assert spec["ContainerEntrypoint"] == ["/bin/sh", "-c", WRAPPER, "archipel"]
    assert spec["ContainerArguments"] == ["python", "train.py", "--epochs", "3"]
    assert sent["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",  # a CPU slot: the site names no type
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
    }
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400}
    assert "EnableManagedSpotTraining" not in sent and "CheckpointConfig" not in sent
    assert sent["Environment"]["ARCHIPEL_ATTEMPT_ID"] == a
    assert sent["Environment"]["ARCHIPEL_RUN_ID"] == "r-1"
    assert _tags(sm, a) == {
        "archipel:run": "r-1",
        "archipel:attempt": a,
        "archipel:site": sm.backend.name,
    }


def test_a_spot_site_asks_for_managed_spot_with_a_bounded_wait(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_environment(monkeypatch)
    spot = make_sagemaker_site(
        moto_url, tmp_path, market="spot", max_runtime_seconds=7200, spot_wait_seconds=1800
    )
    a = new_id()
    assert spot.backend.launch(_request(a)).ok
    job = spot.sagemaker.client.describe_training_job(TrainingJobName=job_name(a))
    assert job["EnableManagedSpotTraining"] is True  # as the emulator received it
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 9000}


@pytest.mark.parametrize(
    ("site_type", "accelerators", "expected"),
    [
        pytest.param(None, "A10G:1", "ml.g5.xlarge", id="from-the-accelerators"),
        pytest.param(None, "H100:8", "ml.p5.48xlarge", id="eight-h100"),
        pytest.param("ml.g6e.xlarge", "A10G:1", "ml.g6e.xlarge", id="the-site-overrides"),
    ],
)
def test_the_instance_type_is_the_sites_or_follows_the_placement(
    moto_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    site_type: str | None,
    accelerators: str,
    expected: str,
) -> None:
    aws_environment(monkeypatch)
    site = make_sagemaker_site(moto_url, tmp_path, instance_type=site_type)
    assert site.backend.launch(_request(new_id(), accelerators=accelerators)).ok
    assert site.sagemaker.sent["create_training_job"]["ResourceConfig"]["InstanceType"] == expected


def test_accelerators_without_a_known_type_are_a_retryable_refusal(sm: EmulatedSageMaker) -> None:
    result = sm.backend.launch(_request(new_id(), accelerators="MI300X:8"))
    assert not result.ok and result.retryable
    assert "give the site an instance_type" in (result.error or "")
    assert sm.sagemaker.calls["create_training_job"] == 0


def test_a_workdir_travels_as_an_input_channel_from_the_staging(
    sm: EmulatedSageMaker, tmp_path: Path
) -> None:
    a = new_id()
    archive = workdir_archive(tmp_path, {"train.py": "print(1)\n"})
    assert sm.backend.launch(_request(a, files=str(archive))).ok
    body = sm.s3.client.get_object(Bucket=BUCKET, Key=f"stage/{a}/workdir.tar.gz")["Body"]
    assert body.read() == archive.read_bytes()
    (channel,) = sm.sagemaker.sent["create_training_job"]["InputDataConfig"]
    assert channel["ChannelName"] == "workdir"
    source = channel["DataSource"]["S3DataSource"]
    assert source["S3Uri"] == f"s3://{BUCKET}/stage/{a}/workdir.tar.gz"


def test_a_workdir_or_checkpoint_that_cannot_be_uploaded_is_a_retryable_refusal(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_environment(monkeypatch)
    elsewhere = make_sagemaker_site(moto_url, tmp_path / "o", staging="s3://no-such-bucket/st")
    archive = workdir_archive(tmp_path, {"train.py": "print(1)\n"})
    result = elsewhere.backend.launch(_request(new_id(), files=str(archive)))
    assert not result.ok and result.retryable
    assert "cannot upload the workdir to s3://no-such-bucket/st/" in (result.error or "")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "step").write_text("1\n")
    env = {"ARCHIPEL_RUN_ID": "r-9", "ARCHIPEL_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    result = elsewhere.backend.launch(LaunchRequest(new_id(), ["python", "train.py"], env))
    assert not result.ok and result.retryable
    assert "cannot copy the run's checkpoint to s3://no-such-bucket/" in (result.error or "")
    assert elsewhere.sagemaker.calls["create_training_job"] == 0


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        pytest.param(LaunchRequest("a-1", []), "empty command", id="no-command"),
        pytest.param(
            LaunchRequest("a-1", ["x"], {"BAD-NAME": "1"}), "invalid environment", id="bad-env"
        ),
        pytest.param(
            LaunchRequest("a-1", ["x"], {f"V{i}": "1" for i in range(100)}),
            "at most 100 environment variables",
            id="too-many-variables",
        ),
        pytest.param(
            LaunchRequest("a-1", ["x"], {"BIG": "x" * 600}), "too long: ['BIG']", id="long-value"
        ),
        pytest.param(
            LaunchRequest("a-1", ["python", "-c", "x" * (MAX_ARGUMENT_CHARS + 1)]),
            "a script in the workdir",
            id="long-argument",
        ),
    ],
)
def test_a_request_no_sagemaker_site_can_run_is_refused_for_good(
    sm: EmulatedSageMaker, request_: LaunchRequest, why: str
) -> None:
    # an attempt id of its own: moto's state is one per test process, whatever the server
    result = sm.backend.launch(dataclasses.replace(request_, attempt_id=new_id()))
    assert not result.ok and not result.retryable
    assert why in (result.error or "")
    assert sm.sagemaker.calls["create_training_job"] == 0


# --- idempotence --------------------------------------------------------------------------


def test_the_same_attempt_launched_twice_creates_one_job(sm: EmulatedSageMaker) -> None:
    a = new_id()
    first, second = sm.backend.launch(_request(a)), sm.backend.launch(_request(a))
    assert first.ok and second.ok and first.backend_id == second.backend_id
    assert sm.sagemaker.calls["create_training_job"] == 1


def test_a_control_plane_that_lost_its_record_finds_the_job_by_its_name(
    sm: EmulatedSageMaker, moto_url: str, tmp_path: Path
) -> None:
    a = new_id()
    first = sm.backend.launch(_request(a))
    other = make_sagemaker_site(moto_url, tmp_path / "other-state", name=sm.backend.name)
    again = other.backend.launch(_request(a))
    assert again.ok and again.backend_id == first.backend_id
    assert other.sagemaker.calls["create_training_job"] == 0


def test_concurrent_launches_of_one_attempt_create_one_job(sm: EmulatedSageMaker) -> None:
    a = new_id()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(sm.backend.launch(_request(a))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and all(r.ok for r in results)
    assert sm.sagemaker.calls["create_training_job"] == 1


def test_a_lost_answer_is_healed_by_looking_again(sm: EmulatedSageMaker) -> None:
    a = new_id()
    sm.sagemaker.lost_answers["create_training_job"] = client_error("InternalFailure", "Create")
    assert sm.backend.launch(_request(a)).ok
    assert sm.backend.observe([a])[a].state is AttemptState.RUNNING


def test_a_job_another_server_created_meanwhile_is_taken_as_launched(
    sm: EmulatedSageMaker,
) -> None:
    """The name was free when asked, taken when creating (SageMaker: ResourceInUse)."""
    a = new_id()
    sm.backend.launch(_request(a))  # "the other server" (moto keeps the job)
    (sm.backend.state_dir / a / "job").unlink()  # ... and this one never recorded it
    sm.sagemaker.fail(
        "describe_training_job", client_error("ValidationException", "D", "Could not find job")
    )
    sm.sagemaker.fail("create_training_job", client_error("ResourceInUse", "C", "name in use"))
    assert sm.backend.launch(_request(a)).ok


# --- errors that move a run elsewhere -----------------------------------------------------

FAILOVER_ERRORS = [
    ("ResourceLimitExceeded", "quota"),
    ("CapacityError", "no capacity"),
    ("InsufficientCapacity", "no capacity"),
    ("ThrottlingException", "throttled"),
    ("AccessDeniedException", "credentials"),
    ("ValidationException", "site configuration"),
    ("SomethingNew", "refused"),
]


@pytest.mark.parametrize(("code", "meaning"), FAILOVER_ERRORS, ids=[c for c, _ in FAILOVER_ERRORS])
def test_each_launch_error_is_retryable_and_named(
    code: str, meaning: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against botocore's Stubber (no emulator, no network): the call SageMaker refuses."""
    from botocore.stub import Stubber

    aws_environment(monkeypatch)
    clients = {s: plain(s, "http://127.0.0.1:9") for s in ("sagemaker", "s3", "logs")}
    config = SageMakerConfig(REGION, ROLE, TRAINING_IMAGE, f"s3://{BUCKET}", "ml.p4d.24xlarge")
    backend = SageMakerBackend("sm-eu", config, tmp_path, clients=clients.__getitem__)
    missing = "Requested resource not found."
    with Stubber(clients["sagemaker"]) as stub:
        stub.add_client_error("describe_training_job", "ValidationException", missing)
        stub.add_client_error("create_training_job", service_error_code=code, service_message="m")
        result = backend.launch(LaunchRequest("a-1", ["true"]))
        stub.assert_no_pending_responses()
    assert not result.ok and result.retryable
    assert result.error is not None and result.error.startswith(f"SageMaker {code}: ")
    assert meaning in result.error


def test_throttling_is_retried_with_backoff_a_bounded_number_of_times(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default clients (botocore's standard retry mode: exponential backoff) against
    the emulator, every CreateTrainingJob answered by a throttling error before it leaves."""
    from botocore.awsrequest import AWSResponse

    aws_environment(monkeypatch)
    make_sagemaker_site(moto_url, tmp_path / "made")  # the staging bucket
    config = SageMakerConfig(
        REGION, ROLE, TRAINING_IMAGE, f"s3://{BUCKET}", endpoint_url=moto_url, max_attempts=3
    )
    backend = SageMakerBackend("sm-eu", config, tmp_path / "site")
    sent = []
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def throttle(request: Any, **_: Any) -> AWSResponse:
        sent.append(time.monotonic())
        return AWSResponse(request.url, 400, {}, Raw())

    backend._sm.meta.events.register("before-send.sagemaker.CreateTrainingJob", throttle)
    result = backend.launch(LaunchRequest(new_id(), ["true"]))
    assert len(sent) == 3  # max_attempts tries, then the answer
    assert not result.ok and result.retryable and "throttled" in (result.error or "")


# --- observing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "secondary", "failure", "state", "code"),
    [
        ("Completed", "Completed", "", AttemptState.SUCCEEDED, 0),
        ("Failed", "Failed", "AlgorithmError: archipel: exit status 3", AttemptState.FAILED, 3),
        ("Failed", "Failed", "CapacityError: Unable to provision", AttemptState.PREEMPTED, None),
        ("InProgress", "Interrupted", "", AttemptState.PENDING, None),
        ("InProgress", "Starting", "", AttemptState.PENDING, None),
    ],
    ids=["completed", "failed-3", "capacity", "spot-interrupted", "starting"],
)
def test_the_jobs_status_decides_the_attempts(
    sm: EmulatedSageMaker,
    status: str,
    secondary: str,
    failure: str,
    state: AttemptState,
    code: int | None,
) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    sm.sagemaker.move(job_name(a), status, secondary, failure)
    obs = sm.backend.observe([a])[a]
    assert (obs.state, obs.exit_code) == (state, code)
    assert obs.backend_id == f"{sm.backend.name}:{job_name(a)}"


def test_a_spot_interruption_sagemaker_gives_up_on_is_a_preemption(
    sm: EmulatedSageMaker,
) -> None:
    """Interrupted: SageMaker waits for spot capacity (the attempt is pending, not lost);
    past MaxWaitTimeInSeconds it stops the job: the run is preempted, not failed."""
    a = new_id()
    sm.backend.launch(_request(a))
    sm.sagemaker.move(job_name(a), "InProgress", "Interrupted")
    waiting = sm.backend.observe([a])[a]
    assert waiting.state is AttemptState.PENDING and "managed spot" in (waiting.reason or "")
    sm.sagemaker.move(job_name(a), "Stopped", "MaxWaitTimeExceeded")
    lost = sm.backend.observe([a])[a]
    assert lost.state is AttemptState.PREEMPTED and "MaxWaitTimeInSeconds" in (lost.reason or "")


def test_a_job_stopped_outside_archipel_is_a_preemption(sm: EmulatedSageMaker) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    sm.sagemaker.move(job_name(a), "Stopping", "Stopping")
    assert sm.backend.observe([a])[a].state is AttemptState.RUNNING  # its last sync goes on
    assert sm.backend.observe([a])[a].state is AttemptState.PREEMPTED


def test_a_job_another_server_cancelled_is_cancelled(
    sm: EmulatedSageMaker, moto_url: str, tmp_path: Path
) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    other = make_sagemaker_site(moto_url, tmp_path / "other", name=sm.backend.name)
    other.sagemaker.statuses = sm.sagemaker.statuses  # one SageMaker, seen by both
    other.backend.cancel(a)
    assert sm.backend.observe([a])[a].state is AttemptState.CANCELLED


def test_cancel_tags_and_stops_the_job_once(sm: EmulatedSageMaker) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    sm.backend.cancel(a)
    assert _tags(sm, a)["archipel:cancelled"] == "true"
    assert sm.sagemaker.sent["stop_training_job"] == {"TrainingJobName": job_name(a)}
    assert sm.backend.observe([a])[a].state is AttemptState.CANCELLED
    sm.backend.cancel(a)  # stopped: nothing to do
    assert sm.sagemaker.calls["stop_training_job"] == 1


def test_cancelling_a_finished_job_changes_nothing(sm: EmulatedSageMaker) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    sm.sagemaker.move(job_name(a), "Completed", "Completed")
    sm.backend.cancel(a)
    assert sm.sagemaker.calls["stop_training_job"] == 0
    assert sm.backend.observe([a])[a].state is AttemptState.SUCCEEDED


def test_a_failed_query_is_unobserved_not_unknown(sm: EmulatedSageMaker) -> None:
    a = new_id()
    sm.backend.launch(_request(a))
    sm.sagemaker.fail("describe_training_job", client_error("ThrottlingException", "Describe"))
    obs = sm.backend.observe([a])[a]
    assert obs.state is AttemptState.UNOBSERVED and "ThrottlingException" in (obs.reason or "")
    assert sm.backend.observe([a])[a].state is AttemptState.RUNNING  # asked again: fine


def test_logs_come_from_the_jobs_cloudwatch_stream_from_an_offset(sm: EmulatedSageMaker) -> None:
    a = new_id()
    assert sm.backend.logs(a).data == b""  # no log group yet
    sm.backend.launch(_request(a))
    logs = sm.logs.client
    logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{job_name(a)}/algo-1-1700000000"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": "hello"}, {"timestamp": now + 1, "message": "world"}]
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)
    chunk = sm.backend.logs(a)
    assert (chunk.data, chunk.next_offset) == (b"hello\nworld\n", 12)
    assert sm.backend.logs(a, 6).data == b"world\n"
    rest = sm.backend.logs(a, 12)
    assert (rest.data, rest.next_offset) == (b"", 12)


# --- health --------------------------------------------------------------------------------


def test_an_unreachable_region_makes_the_site_unhealthy_and_health_is_kept_a_while(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_environment(monkeypatch)
    site = make_sagemaker_site(moto_url, tmp_path, health_ttl=60)
    site.sagemaker.fail("list_training_jobs", client_error("UnrecognizedClientException", "L"))
    health = site.backend.health()
    assert not health.healthy and "UnrecognizedClientException" in (health.reason or "")
    assert site.backend.health().healthy and site.backend.health().healthy
    assert site.sagemaker.calls["list_training_jobs"] == 2


# --- checkpoints ---------------------------------------------------------------------------


def test_the_runs_checkpoint_is_the_jobs_checkpoint_config_at_the_ec2_prefix(
    sm: EmulatedSageMaker, moto_url: str, tmp_path: Path
) -> None:
    """Out to the same prefix an EC2 site of the same staging uses, given to SageMaker
    as CheckpointConfig.S3Uri; the command finds it at CheckpointConfig.LocalPath."""
    run, a, home = new_id(), new_id(), tmp_path / "ckpt"
    home.mkdir()
    (home / "step").write_text("7\n")
    env = {"ARCHIPEL_RUN_ID": run, "ARCHIPEL_CHECKPOINT_DIR": str(home)}
    assert sm.backend.launch(LaunchRequest(a, ["python", "train.py"], env)).ok
    sent = sm.sagemaker.sent["create_training_job"]
    ec2 = make_site(moto_url, tmp_path / "ec2")  # staging s3://archipel-test/stage too
    prefix = ec2.backend.staging.checkpoints(run)
    assert sent["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/{prefix}",
        "LocalPath": CHECKPOINT_PATH,
    }
    assert sent["Environment"]["ARCHIPEL_CHECKPOINT_DIR"] == CHECKPOINT_PATH
    body = sm.s3.client.get_object(Bucket=BUCKET, Key=f"{prefix}step")["Body"].read()
    assert body == b"7\n"


def test_a_preempted_jobs_checkpoint_comes_home_before_its_end_is_told(
    sm: EmulatedSageMaker, tmp_path: Path
) -> None:
    run, a, home = new_id(), new_id(), tmp_path / "ckpt"
    env = {"ARCHIPEL_RUN_ID": run, "ARCHIPEL_CHECKPOINT_DIR": str(home)}
    assert sm.backend.launch(LaunchRequest(a, ["python", "train.py"], env)).ok
    key = f"stage/checkpoints/{run}/step"
    sm.s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"12\n")  # SageMaker's sync
    sm.sagemaker.move(job_name(a), "Stopped", "MaxWaitTimeExceeded")
    sm.s3.fail("get_paginator", client_error("SlowDown", "ListObjectsV2"))
    assert sm.backend.observe([a])[a].state is AttemptState.UNOBSERVED  # not told yet
    assert sm.backend.observe([a])[a].state is AttemptState.PREEMPTED
    assert (home / "step").read_text() == "12\n"


# --- names, states and the wrapper, on their own ------------------------------------------


@given(st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=128))
def test_every_attempt_id_gives_a_job_name_sagemaker_takes(attempt_id: str) -> None:
    import re

    name = job_name(attempt_id)
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name), name
    assert job_name(attempt_id) == name


def test_distinct_attempts_get_distinct_job_names() -> None:
    ids = ["r-1-a1", "r_1-a1", "r.1-a1", "x" * 80 + "-a1", "x" * 80 + "-a2"]
    assert len({job_name(i) for i in ids}) == len(ids)


def test_the_smallest_type_with_the_accelerators_is_known_for_common_gpus() -> None:
    instance_type_for = SageMakerConfig.instance_type_for
    assert instance_type_for(None) == "ml.m5.xlarge"
    assert instance_type_for("cpu:1") == "ml.m5.xlarge"
    assert instance_type_for("T4:1") == "ml.g4dn.xlarge"
    assert instance_type_for("A100:8") == "ml.p4d.24xlarge"
    assert instance_type_for("A100:3") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"instance_type": "g5.xlarge"}, "write ml.g5.xlarge", id="ec2-type"),
        pytest.param({"market": "capacity-block"}, "on-demand or spot", id="block"),
        pytest.param({"max_runtime_seconds": 30}, "between 60", id="too-short"),
        pytest.param(
            {"market": "spot", "max_runtime_seconds": 28 * 86_400, "spot_wait_seconds": 1},
            "spot_wait_seconds must be between 60",
            id="spot-too-long",
        ),
        pytest.param({"subnet": "subnet-0123abcd"}, "both subnet", id="half-a-vpc"),
    ],
)
def test_a_configuration_sagemaker_would_refuse_is_refused_at_once(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SageMakerConfig(REGION, ROLE, TRAINING_IMAGE, f"s3://{BUCKET}", **options)


STATES = [
    # (status, secondary, failure reason, cancelled) -> attempt state
    ("InProgress", "Starting", "", False, AttemptState.PENDING),
    ("InProgress", "LaunchingMLInstances", "", False, AttemptState.PENDING),
    ("InProgress", "Downloading", "", False, AttemptState.PENDING),
    ("InProgress", "Training", "", False, AttemptState.RUNNING),
    ("InProgress", "Uploading", "", False, AttemptState.RUNNING),
    ("InProgress", "Interrupted", "", False, AttemptState.PENDING),
    ("InProgress", "Restarting", "", False, AttemptState.PENDING),
    ("Completed", "Completed", "", False, AttemptState.SUCCEEDED),
    ("Failed", "Failed", "AlgorithmError: archipel: exit status 2", False, AttemptState.FAILED),
    ("Failed", "Failed", "AlgorithmError: out of memory", False, AttemptState.FAILED),
    ("Failed", "Failed", "InternalServerError: We encountered", False, AttemptState.PREEMPTED),
    ("Failed", "Failed", "InsufficientCapacityError: no ml.p5", False, AttemptState.PREEMPTED),
    ("Stopping", "Stopping", "", True, AttemptState.CANCELLED),
    ("Stopped", "Stopped", "", True, AttemptState.CANCELLED),
    ("Stopping", "Stopping", "", False, AttemptState.RUNNING),
    ("Stopped", "Stopped", "", False, AttemptState.PREEMPTED),
    ("Stopped", "MaxWaitTimeExceeded", "", False, AttemptState.PREEMPTED),
    ("Stopped", "MaxRuntimeExceeded", "", False, AttemptState.FAILED),
    ("Sideways", "", "", False, AttemptState.UNOBSERVED),
    ("InProgress", "Teleporting", "", False, AttemptState.UNOBSERVED),
]


@pytest.mark.parametrize(
    ("status", "secondary", "failure", "cancelled", "expected"),
    STATES,
    ids=[f"{s}-{x or 'none'}-{c}" for s, x, _, c, _ in STATES],
)
def test_job_statuses_map_to_attempt_states(
    status: str, secondary: str, failure: str, cancelled: bool, expected: AttemptState
) -> None:
    assert job_state(status, secondary, failure, cancelled)[0] is expected


def test_a_failure_without_an_exit_status_is_status_1() -> None:
    assert job_state("Failed", "Failed", "AlgorithmError: out of memory", False)[2] == 1
    assert exit_status("AlgorithmError: archipel: exit status 137") == 137


def _run_wrapper(tmp_path: Path, command: list[str], archive: Path | None) -> tuple[int, str]:
    """The wrapper as the container runs it, /opt/ml being a folder here; its exit
    status and the failure reason it leaves for SageMaker."""
    ml = tmp_path / "ml"
    (ml / "output").mkdir(parents=True)
    if archive is not None:
        channel = ml / "input" / "data" / "workdir"
        channel.mkdir(parents=True)
        (channel / "workdir.tar.gz").write_bytes(archive.read_bytes())
    script = WRAPPER.replace("/opt/ml", str(ml))
    env = {"PATH": os.environ["PATH"], "ARCHIPEL_ATTEMPT_DIR": str(ml / "archipel" / "work")}
    done = subprocess.run(
        ["/bin/sh", "-c", script, "archipel", *command], env=env, timeout=30, check=False
    )
    failure = ml / "output" / "failure"
    return done.returncode, failure.read_text() if failure.exists() else ""


def test_the_wrapper_fits_an_entrypoint_argument() -> None:
    assert len(WRAPPER) <= MAX_ARGUMENT_CHARS


def test_the_wrapper_runs_the_command_in_the_unpacked_workdir(tmp_path: Path) -> None:
    archive = workdir_archive(tmp_path, {"train.py": "steps\n"})
    command = ["/bin/sh", "-c", 'cat train.py > seen; echo "$1" >> seen', "-", "it's $HOME"]
    code, failure = _run_wrapper(tmp_path, command, archive)
    assert (code, failure) == (0, "")
    seen = (tmp_path / "ml" / "archipel" / "work" / "seen").read_text()
    assert seen == "steps\nit's $HOME\n"


def test_the_wrapper_leaves_a_failures_exit_status_as_the_reason(tmp_path: Path) -> None:
    code, failure = _run_wrapper(tmp_path, ["/bin/sh", "-c", "exit 3"], None)
    assert code == 3
    assert job_state("Failed", "Failed", f"AlgorithmError: {failure}", False)[1:] == (
        f"AlgorithmError: {failure}",
        3,
    )


def test_a_workdir_that_cannot_be_unpacked_ends_with_125(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    code, failure = _run_wrapper(tmp_path, ["true"], broken)
    assert code == 125 and exit_status(failure) == 125


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does, boto3 sees dummy credentials only."""
    aws_environment(monkeypatch)
