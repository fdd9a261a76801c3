"""EC2 sites: the contract on an emulator, teardown, idempotence, interruptions, errors.

The emulator is moto in server mode on a loopback port (``tests/aws_emulator.py``),
with dummy credentials: no test reaches AWS. moto starts no machine, so no command
runs and no exit status comes back by itself: the contract tests that need one are
skipped with that reason. What the boot script does is tested apart, by running
the script itself here with stand-ins for the AWS CLI and ``shutdown``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.aws_emulator import (
    BUCKET,
    IMAGE,
    INSTANCE_TYPE,
    REGION,
    Emulated,
    aws_environment,
    client_error,
    make_site,
    plain,
)

from archipel.backends import AttemptState, Ec2Backend, Ec2Config, LaunchRequest
from archipel.backends._ec2_script import WORKDIR_FAILED, Staging, user_data
from archipel.backends._ec2_states import instance_state

from .contract import BackendContract, ShellHarness, new_id, workdir_archive


@pytest.fixture
def harness(site: Emulated) -> ShellHarness:
    return ShellHarness(site.backend, timeout=5)


class TestEc2Backend(BackendContract):
    """The contract an emulator can check. The emulator starts no machine, so no command
    runs and no exit status or output comes back: the rest of the contract
    (RunningBackendContract) is not claimed here, and the boot script that would run
    the command is tested on its own below."""


def _request(a: str, **kw: Any) -> LaunchRequest:
    return LaunchRequest(a, ["python", "train.py"], {"ARCHIPEL_RUN_ID": "r-1"}, **kw)


def _finish(site: Emulated, a: str, code: int, output: bytes = b"") -> None:
    """What the boot script does when the command ends: upload its output and exit
    status, then power off (here: terminate, as moto has no instance to power off)."""
    s3 = site.s3.client
    staging = site.backend.staging
    s3.put_object(Bucket=BUCKET, Key=staging.key(a, "output.log"), Body=output)
    s3.put_object(Bucket=BUCKET, Key=staging.key(a, "exit_code"), Body=f"{code}\n".encode())
    (instance,) = [i for i in site.instances() if _tag(i, "archipel:attempt") == a]
    site.check.terminate_instances(InstanceIds=[instance["InstanceId"]])


def _tag(resource: dict[str, Any], key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key)


# --- launch, tags, teardown -------------------------------------------------------------


def test_a_launch_starts_one_tagged_instance_with_its_volume(site: Emulated) -> None:
    a = new_id()
    result = site.backend.launch(_request(a))
    assert result.ok
    (instance,) = site.instances()
    assert result.backend_id == f"{site.backend.name}:{instance['InstanceId']}"
    assert instance["InstanceType"] == INSTANCE_TYPE
    for resource in (instance, *site.volumes()):
        assert _tag(resource, "archipel:attempt") == a
        assert _tag(resource, "archipel:run") == "r-1"
        assert _tag(resource, "archipel:site") == site.backend.name
    assert len(site.volumes()) == 1


def test_launch_then_cancel_leaves_no_instance_and_no_volume(site: Emulated) -> None:
    a = new_id()
    assert site.backend.launch(_request(a)).ok
    assert site.backend.observe([a])[a].state is AttemptState.RUNNING
    site.backend.cancel(a)
    assert site.instances("pending", "running", "stopping", "stopped") == []
    assert site.volumes() == []
    obs = site.backend.observe([a])[a]
    assert obs.state is AttemptState.CANCELLED
    site.backend.cancel(a)  # again: nothing to do
    assert site.ec2.calls["terminate_instances"] == 1


def test_the_same_attempt_launched_twice_starts_one_instance(site: Emulated) -> None:
    a = new_id()
    first = site.backend.launch(_request(a))
    second = site.backend.launch(_request(a))
    assert first.ok and second.ok and first.backend_id == second.backend_id
    assert len(site.instances()) == 1
    assert site.ec2.calls["run_instances"] == 1


def test_a_control_plane_that_lost_its_record_finds_the_instance_by_its_tag(
    site: Emulated, tmp_path: Path, moto_url: str
) -> None:
    """moto ignores ClientToken, so this is the backend's own lookup at work."""
    a = new_id()
    first = site.backend.launch(_request(a))
    other = make_site(moto_url, tmp_path / "another-state-dir", name=site.backend.name)
    again = other.backend.launch(_request(a))
    assert again.ok and again.backend_id == first.backend_id
    assert other.ec2.calls["run_instances"] == 0
    assert len(site.instances()) == 1


def test_concurrent_launches_of_one_attempt_start_one_instance(site: Emulated) -> None:
    a = new_id()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(site.backend.launch(_request(a))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len({r.backend_id for r in results}) == 1 and all(r.ok for r in results)
    assert len(site.instances()) == 1


def test_the_launch_asks_for_what_the_site_declares(site: Emulated, moto_url: str) -> None:
    spot = make_site(
        moto_url,
        site.backend.state_dir / "spot",
        name="aws-spot",
        market="spot",
        zone=f"{REGION}b",
        instance_profile="archipel-attempt",
    )
    params = spot.backend._run_params(_request("a-1"))
    assert params["ClientToken"] == "a-1"
    assert params["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert params["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        },
    }
    assert "CapacityReservationSpecification" not in params
    assert params["Placement"] == {"AvailabilityZone": "eu-west-1b"}
    assert params["IamInstanceProfile"] == {"Name": "archipel-attempt"}
    assert params["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True
    assert "InstanceMarketOptions" not in site.backend._run_params(_request("a-2"))


def test_the_workdir_is_uploaded_to_the_attempts_staging_folder(
    site: Emulated, tmp_path: Path
) -> None:
    a = new_id()
    archive = workdir_archive(tmp_path, {"train.py": "print(1)\n"})
    assert site.backend.launch(_request(a, files=str(archive))).ok
    body = site.s3.client.get_object(Bucket=BUCKET, Key=f"stage/{a}/workdir.tar.gz")["Body"]
    assert body.read() == archive.read_bytes()


def test_a_workdir_that_cannot_be_uploaded_is_a_retryable_refusal(
    site: Emulated, moto_url: str, tmp_path: Path
) -> None:
    elsewhere = make_site(moto_url, tmp_path / "other", staging="s3://no-such-bucket/stage")
    archive = workdir_archive(tmp_path, {"train.py": "print(1)\n"})
    result = elsewhere.backend.launch(_request(new_id(), files=str(archive)))
    assert not result.ok and result.retryable
    assert "cannot upload the workdir to s3://no-such-bucket/stage/" in (result.error or "")
    assert elsewhere.ec2.calls["run_instances"] == 0


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        pytest.param(LaunchRequest("a-1", []), "empty command", id="no-command"),
        pytest.param(
            LaunchRequest("a-1", ["x"], {"BAD-NAME": "1"}), "invalid environment", id="bad-env"
        ),
        pytest.param(LaunchRequest("a-1", ["x"], nodes=2), "one node", id="two-nodes"),
        pytest.param(
            LaunchRequest("a-1", ["x"], {"BIG": "x" * 20_000}), "16384", id="user-data-too-big"
        ),
    ],
)
def test_a_request_no_site_could_run_is_refused_for_good(
    site: Emulated, request_: LaunchRequest, why: str
) -> None:
    result = site.backend.launch(request_)
    assert not result.ok and not result.retryable
    assert why in (result.error or "")
    assert site.ec2.calls["run_instances"] == 0


# --- observing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "state"), [(0, AttemptState.SUCCEEDED), (3, AttemptState.FAILED)])
def test_the_exit_status_the_boot_script_uploads_decides_the_outcome(
    site: Emulated, code: int, state: AttemptState
) -> None:
    a = new_id()
    site.backend.launch(_request(a))
    _finish(site, a, code, b"hello\nworld\n")
    obs = site.backend.observe([a])[a]
    assert (obs.state, obs.exit_code) == (state, code)
    chunk = site.backend.logs(a)
    assert chunk.data == b"hello\nworld\n" and chunk.next_offset == 12
    assert site.backend.logs(a, 6).data == b"world\n"
    rest = site.backend.logs(a, chunk.next_offset)
    assert (rest.data, rest.next_offset) == (b"", 12)
    site.backend.cancel(a)  # a finished attempt: nothing changes
    assert site.backend.observe([a])[a].state is state


def test_a_spot_interruption_is_a_preemption(site: Emulated) -> None:
    a = new_id()
    site.backend.launch(_request(a))
    site.interrupt()
    obs = site.backend.observe([a])[a]
    assert obs.state is AttemptState.PREEMPTED
    assert "spot interruption" in (obs.reason or "")


def test_an_instance_stopped_from_outside_is_a_preemption(site: Emulated) -> None:
    a = new_id()
    site.backend.launch(_request(a))
    (instance,) = site.instances()
    site.check.stop_instances(InstanceIds=[instance["InstanceId"]])
    assert site.backend.observe([a])[a].state is AttemptState.PREEMPTED


def test_a_failed_query_is_unobserved_not_unknown(site: Emulated) -> None:
    a, b = new_id(), new_id()
    site.backend.launch(_request(a))
    site.ec2.fail("describe_instances", client_error("RequestLimitExceeded", "DescribeInstances"))
    seen = site.backend.observe([a, b])
    assert {o.state for o in seen.values()} == {AttemptState.UNOBSERVED}
    assert "RequestLimitExceeded" in (seen[a].reason or "")
    assert site.backend.observe([a, b])[b].state is AttemptState.UNKNOWN  # asked again: fine


def test_a_failed_exit_status_read_is_unobserved(site: Emulated) -> None:
    a = new_id()
    site.backend.launch(_request(a))
    _finish(site, a, 0)
    site.s3.fail("get_object", client_error("AccessDenied", "GetObject"))
    assert site.backend.observe([a])[a].state is AttemptState.UNOBSERVED


def test_observe_asks_ec2_once_per_batch(site: Emulated) -> None:
    ids = [new_id() for _ in range(3)]
    for a in ids:
        site.backend.launch(_request(a))
    before = site.ec2.calls["describe_instances"]
    seen = site.backend.observe([*ids, "missing-1"])
    assert site.ec2.calls["describe_instances"] - before == 1
    assert {seen[a].state for a in ids} == {AttemptState.RUNNING}
    assert seen["missing-1"].state is AttemptState.UNKNOWN


# --- health ------------------------------------------------------------------------------


def test_a_type_the_region_does_not_offer_makes_the_site_unhealthy(
    site: Emulated, moto_url: str
) -> None:
    p5 = make_site(moto_url, site.backend.state_dir / "p5", name="p5", instance_type="p5.48xlarge")
    health = p5.backend.health()
    assert not health.healthy and "p5.48xlarge is not offered in eu-west-1" in (health.reason or "")


def test_a_healthy_answer_is_kept_for_a_while_and_an_unhealthy_one_is_not(
    site: Emulated, moto_url: str, tmp_path: Path
) -> None:
    assert site.backend.health().healthy
    assert site.backend.health().healthy
    assert site.ec2.calls["describe_availability_zones"] == 1
    never_kept = make_site(moto_url, tmp_path / "ttl0", health_ttl=0)
    never_kept.ec2.fail("describe_availability_zones", client_error("AuthFailure", "X"))
    assert not never_kept.backend.health().healthy
    assert never_kept.backend.health().healthy  # asked again at once, and answered
    assert never_kept.ec2.calls["describe_availability_zones"] == 2


def test_an_unreachable_region_makes_the_site_unhealthy(site: Emulated) -> None:
    site.ec2.fail("describe_availability_zones", client_error("AuthFailure", "X"))
    health = site.backend.health()
    assert not health.healthy and "AuthFailure" in (health.reason or "")


# --- errors that move a run elsewhere -----------------------------------------------------

FAILOVER_ERRORS = [
    ("InsufficientInstanceCapacity", "no capacity"),
    ("InstanceLimitExceeded", "quota"),
    ("VcpuLimitExceeded", "vCPU quota"),
    ("SpotMaxPriceTooLow", "spot price"),
    ("Unsupported", "not offered"),
    ("RequestLimitExceeded", "throttled"),
    ("UnauthorizedOperation", "credentials"),
    ("InvalidAMIID.NotFound", "image does not exist"),
    ("SomethingNew", "refused"),
]


@pytest.mark.parametrize(("code", "meaning"), FAILOVER_ERRORS, ids=[c for c, _ in FAILOVER_ERRORS])
def test_each_launch_error_is_retryable_and_named(
    code: str, meaning: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against botocore's Stubber (no emulator, no network): the call EC2 refuses."""
    from botocore.stub import Stubber

    aws_environment(monkeypatch)
    ec2, s3 = plain("ec2", "http://127.0.0.1:9"), plain("s3", "http://127.0.0.1:9")  # never sent
    config = Ec2Config(REGION, "ami-0123456789abcdef0", "p4d.24xlarge", f"s3://{BUCKET}")
    clients = {"ec2": ec2, "s3": s3}
    backend = Ec2Backend("aws-eu", config, tmp_path, clients=clients.__getitem__)
    with Stubber(ec2) as stub:
        stub.add_response("describe_instances", {"Reservations": []})
        stub.add_client_error("run_instances", service_error_code=code, service_message="m")
        result = backend.launch(LaunchRequest("a-1", ["true"]))
        stub.assert_no_pending_responses()
    assert not result.ok and result.retryable
    assert result.error is not None
    assert result.error.startswith(f"EC2 {code}: ") and meaning in result.error


def test_throttling_is_retried_a_bounded_number_of_times_then_retryable(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default clients (botocore's standard retry mode) against the emulator, with
    every RunInstances answered by a throttling error before it leaves."""
    from botocore.awsrequest import AWSResponse

    aws_environment(monkeypatch)
    make_site(moto_url, tmp_path / "made")  # the staging bucket
    config = Ec2Config(
        REGION, IMAGE, INSTANCE_TYPE, f"s3://{BUCKET}", endpoint_url=moto_url, max_attempts=2
    )
    backend = Ec2Backend("aws-eu", config, tmp_path / "site")
    sent = []
    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down"
        b"</Message></Error></Errors><RequestID>1</RequestID></Response>"
    )

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def throttle(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 503, {}, Raw())

    backend._ec2.meta.events.register("before-send.ec2.RunInstances", throttle)
    result = backend.launch(LaunchRequest("a-1", ["true"]))
    assert len(sent) == 2  # max_attempts tries, then the answer
    assert not result.ok and result.retryable and "throttled" in (result.error or "")


def test_a_lost_answer_is_healed_by_looking_again(site: Emulated) -> None:
    """RunInstances took the request but the answer was lost: the instance is found."""
    a = new_id()
    site.ec2.lost_answers["run_instances"] = client_error("InternalError", "RunInstances")
    result = site.backend.launch(_request(a))
    assert result.ok
    assert len(site.instances()) == 1


# --- the state table ---------------------------------------------------------------------

STATES = [
    # (instance state, state reason, exit status in S3, cancelled) -> attempt state
    ("pending", "", None, False, AttemptState.PENDING),
    ("running", "", None, False, AttemptState.RUNNING),
    ("terminated", "Client.InstanceInitiatedShutdown", 0, False, AttemptState.SUCCEEDED),
    ("shutting-down", "Client.InstanceInitiatedShutdown", 2, False, AttemptState.FAILED),
    ("terminated", "Client.InstanceInitiatedShutdown", None, False, AttemptState.FAILED),
    ("terminated", "Client.UserInitiatedShutdown", None, True, AttemptState.CANCELLED),
    ("terminated", "Server.SpotInstanceTermination", None, False, AttemptState.PREEMPTED),
    ("terminated", "Server.InternalError", None, False, AttemptState.PREEMPTED),
    ("terminated", "Client.UserInitiatedShutdown", None, False, AttemptState.PREEMPTED),
    ("stopped", "Server.SpotInstanceShutdown", None, False, AttemptState.PREEMPTED),
    ("stopping", "Client.UserInitiatedShutdown", None, False, AttemptState.PREEMPTED),
    ("stopped", "", 0, False, AttemptState.SUCCEEDED),
    ("rebooting-sideways", "", None, False, AttemptState.UNOBSERVED),
]


@pytest.mark.parametrize(
    ("state", "reason", "code", "cancelled", "expected"),
    STATES,
    ids=[f"{s}-{r or 'none'}-{c}-{x}" for s, r, c, x, _ in STATES],
)
def test_instance_states_map_to_attempt_states(
    state: str, reason: str, code: int | None, cancelled: bool, expected: AttemptState
) -> None:
    assert instance_state(state, reason, code, cancelled)[0] is expected


# --- the boot script, run here ------------------------------------------------------------

_FAKE_AWS = """#!/bin/sh
# aws s3 cp [--only-show-errors] SRC DST, over a folder standing for S3
[ "$1 $2" = "s3 cp" ] || exit 2
shift 2
[ "$1" = "--only-show-errors" ] && shift
local_path() { echo "$FAKE_S3/${1#s3://}"; }
case "$1" in
  s3://*) src=$(local_path "$1"); [ -f "$src" ] || exit 1
          if [ "$2" = - ]; then cat "$src"; else cp "$src" "$2"; fi ;;
  *) dst=$(local_path "$2"); mkdir -p "$(dirname "$dst")"
     if [ "$1" = - ]; then cat >"$dst"; else cp "$1" "$dst"; fi ;;
esac
"""


def _run_boot_script(
    tmp_path: Path, request: LaunchRequest, upload: bool = True
) -> tuple[Path, str]:
    """Run an attempt's user data with stand-ins for ``aws`` and ``shutdown``: the
    attempt's S3 folder, and what ``shutdown`` was asked."""
    bin_dir, s3 = tmp_path / "bin", tmp_path / "s3"
    bin_dir.mkdir()
    for name, text in {
        "aws": _FAKE_AWS,
        "shutdown": '#!/bin/sh\necho "$@" >"$FAKE_S3/shutdown"\n',
    }.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    staging = Staging.parse(f"s3://{BUCKET}/stage")
    if request.files is not None and upload:
        target = s3 / BUCKET / staging.key(request.attempt_id, "workdir.tar.gz")
        target.parent.mkdir(parents=True)
        target.write_bytes(Path(request.files).read_bytes())
    script = user_data(request, staging, "aws-eu", root=str(tmp_path / "instance"))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_S3": str(s3),
        "SERVER_SECRET": "do-not-leak",
    }
    subprocess.run(["/bin/bash", "-c", script], env=env, timeout=30, check=True)
    return s3 / BUCKET / "stage" / request.attempt_id, (s3 / "shutdown").read_text()


def test_the_boot_script_runs_the_command_in_the_workdir_and_reports(tmp_path: Path) -> None:
    archive = workdir_archive(tmp_path, {"train.py": "steps\n", "pkg/data.txt": "data\n"})
    command = ["/bin/sh", "-c", 'cat train.py pkg/data.txt; echo "$NOTE"; exit 4']
    request = LaunchRequest("a-1", command, {"NOTE": 'it\'s "quoted" $HOME'}, files=str(archive))
    folder, shutdown = _run_boot_script(tmp_path, request)
    assert (folder / "output.log").read_text() == 'steps\ndata\nit\'s "quoted" $HOME\n'
    assert (folder / "exit_code").read_text() == "4\n"
    assert shutdown.strip() == "-h now"


def test_the_boot_script_passes_only_the_attempts_environment(tmp_path: Path) -> None:
    names = ["SERVER_SECRET", "FAKE_S3", "ARCHIPEL_RUN_ID", "ARCHIPEL_ATTEMPT_ID", "PATH"]
    command = ["/bin/sh", "-c", "".join(f'echo "{n}=${{{n}-<unset>}}"; ' for n in names)]
    request = LaunchRequest("a-2", command, {"ARCHIPEL_RUN_ID": "r-1"})
    folder, _ = _run_boot_script(tmp_path, request)
    seen = dict(line.split("=", 1) for line in (folder / "output.log").read_text().splitlines())
    assert seen["SERVER_SECRET"] == "<unset>" and seen["FAKE_S3"] == "<unset>"
    assert seen["ARCHIPEL_RUN_ID"] == "r-1" and seen["ARCHIPEL_ATTEMPT_ID"] == "a-2"
    assert "/usr/bin" in seen["PATH"]
    assert (folder / "exit_code").read_text() == "0\n"


def test_a_workdir_that_cannot_be_fetched_ends_the_attempt_with_125(tmp_path: Path) -> None:
    request = LaunchRequest("a-3", ["true"], files="never-uploaded.tar.gz")
    folder, shutdown = _run_boot_script(tmp_path, request, upload=False)
    assert (folder / "exit_code").read_text() == f"{WORKDIR_FAILED}\n"
    assert "cannot fetch or unpack the workdir" in (folder / "output.log").read_text()
    assert shutdown.strip() == "-h now"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does, boto3 sees dummy credentials only."""
    aws_environment(monkeypatch)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


# --- invariants ----------------------------------------------------------------------------

_ANY_STATE = st.sampled_from(
    ["pending", "running", "stopping", "stopped", "shutting-down", "terminated", "odd"]
)
_ANY_REASON = st.sampled_from(
    [
        "",
        "Client.InstanceInitiatedShutdown",
        "Client.UserInitiatedShutdown",
        "Server.SpotInstanceTermination",
        "Server.SpotInstanceShutdown",
        "Server.InternalError",
        "Server.InsufficientInstanceCapacity",
    ]
)


@given(
    state=_ANY_STATE,
    reason=_ANY_REASON,
    code=st.none() | st.integers(0, 255),
    cancelled=st.booleans(),
)
def test_an_instance_that_exists_is_never_unknown_and_an_exit_status_decides(
    state: str, reason: str, code: int | None, cancelled: bool
) -> None:
    mapped, _ = instance_state(state, reason, code, cancelled)
    assert mapped is not AttemptState.UNKNOWN  # the instance is there: not "no such attempt"
    if code is not None and state in {"stopping", "stopped", "shutting-down", "terminated"}:
        assert mapped is (AttemptState.SUCCEEDED if code == 0 else AttemptState.FAILED)
    if state == "running":
        assert mapped is AttemptState.RUNNING


@settings(max_examples=25, deadline=None)
@given(
    value=st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=40),
    argument=st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=40),
)
def test_the_boot_script_passes_any_value_and_argument_intact(value: str, argument: str) -> None:
    command = ["/bin/sh", "-c", 'printf "%s|%s" "$VALUE" "$0"', argument]
    with tempfile.TemporaryDirectory() as folder:
        request = LaunchRequest("a-4", command, {"VALUE": value})
        staged, _ = _run_boot_script(Path(folder), request)
        assert (staged / "output.log").read_bytes() == f"{value}|{argument}".encode()
