"""SageMaker sites: declared in sites.yaml, validated, built into a SageMaker backend; a run
moves through them like any site, its checkpoint with it, and policy keeps a health run's
checkpoint out of a US bucket.

The AWS side is moto on a loopback port with the training-job layer of
``tests/aws_emulator.py`` (moto completes jobs at once and cannot interrupt one), with
dummy credentials only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aws_emulator import (
    BUCKET,
    REGION,
    ROLE,
    TRAINING_IMAGE,
    Emulated,
    EmulatedSageMaker,
    aws_environment,
    client_error,
    emulator,
    make_sagemaker_site,
    make_site,
)

from archipel.backends import Backend, FakeBackend, LaunchRequest, SageMakerBackend
from archipel.backends._sagemaker import job_name
from archipel.controlplane import SitePlacer, SiteSpec, Store, build_sites, parse_sites
from archipel.core import CatalogSnapshot, InputError, Reason, RunState, parse_workload
from archipel.policy import Policy

from .conftest import SITES, MakeReconciler
from .test_reconciler import workload

#: what a leaked credential would look like in a repr or a log line
SECRET = "wJalrXUtnFEMI-not-a-real-key-K7MDENG"


def sagemaker_site(**extra: Any) -> dict[str, Any]:
    return {
        "name": "sagemaker-ireland",
        "backend": "sagemaker",
        "provider": "aws",
        "region": REGION,
        "country": "IE",
        "accelerators": "A10G:1",
        "role_arn": ROLE,
        "training_image": TRAINING_IMAGE,
        "staging": f"s3://{BUCKET}/archipel",
        **extra,
    }


# --- declaring ----------------------------------------------------------------------------


def test_a_sagemaker_site_is_declared_and_built_into_a_sagemaker_backend(tmp_path: Path) -> None:
    spec = sagemaker_site(
        market="spot", instance_type="ml.g5.2xlarge", max_runtime_seconds=7200, volume_gib=200
    )
    (site,) = build_sites(parse_sites({"sites": [spec]}, "s.yaml"), tmp_path).values()
    assert isinstance(site.backend, SageMakerBackend)
    c = site.backend.config
    assert (c.region, c.role_arn, c.training_image) == (REGION, ROLE, TRAINING_IMAGE)
    assert (c.market, c.instance_type, c.max_runtime_seconds) == ("spot", "ml.g5.2xlarge", 7200)
    assert (c.volume_gib, c.spot_wait_seconds) == (200, 3600)
    assert site.backend.state_dir == tmp_path / "sites" / "sagemaker-ireland"


def test_the_example_sites_file_declares_a_sagemaker_site(tmp_path: Path) -> None:
    import yaml

    path = Path(__file__).parents[2] / "examples" / "controlplane" / "aws-sites.yaml"
    specs = parse_sites(yaml.safe_load(path.read_text()), str(path))
    kinds = {s.name: s.backend for s in specs}
    assert "sagemaker" in kinds.values()
    built = build_sites(specs, tmp_path)
    assert any(isinstance(s.backend, SageMakerBackend) for s in built.values())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(sagemaker_site(role_arn=None), "needs role_arn", id="no-role"),
        pytest.param(sagemaker_site(training_image=None), "needs training_image", id="no-image"),
        pytest.param(sagemaker_site(staging=None), "needs staging", id="no-staging"),
        pytest.param(sagemaker_site(role_arn="archipel-role"), "role_arn", id="role-not-an-arn"),
        pytest.param(
            sagemaker_site(instance_type="g5.xlarge"), "write ml.g5.xlarge", id="an-ec2-type"
        ),
        pytest.param(
            sagemaker_site(market="capacity-block"), "on-demand or spot", id="capacity-block"
        ),
        pytest.param(sagemaker_site(image="ami-0123456789abcdef0"), "image apply to aws", id="ami"),
        pytest.param(sagemaker_site(subnet="subnet-0123abcd"), "both subnet", id="half-a-vpc"),
        pytest.param(sagemaker_site(region="Ireland"), "an AWS region such as", id="bad-region"),
        pytest.param(
            sagemaker_site(accelerators="MI300X:8"), "needs instance_type", id="no-known-type"
        ),
        pytest.param(
            sagemaker_site(market="spot", max_runtime_seconds=28 * 86_400),
            "spot_wait_seconds must be between",
            id="spot-past-28-days",
        ),
        pytest.param(sagemaker_site(max_runtime_seconds=10), "max_runtime_seconds", id="too-short"),
        pytest.param(
            sagemaker_site(aws_session_token=SECRET), "holds no credentials", id="a-token"
        ),
        pytest.param(
            {**sagemaker_site(backend="local"), "staging": None},
            "role_arn, training_image apply to sagemaker sites only",
            id="sagemaker-fields-on-a-local-site",
        ),
    ],
)
def test_a_bad_sagemaker_site_is_refused_with_what_to_change(
    spec: dict[str, Any], message: str
) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(InputError, match=message):
        parse_sites({"sites": [spec]}, "sites.yaml")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"market": "capacity-block"}, "needs capacity_reservation", id="no-block-id"),
        pytest.param(
            {"market": "spot", "capacity_reservation": "cr-0123456789abcdef0"},
            "a spot site cannot launch into a capacity reservation",
            id="spot-reserved",
        ),
        pytest.param({"instance_type": "ml.g5.xlarge"}, "is a SageMaker type", id="ml-type-on-ec2"),
    ],
)
def test_an_aws_sites_market_and_reservation_are_checked(
    extra: dict[str, Any], message: str
) -> None:
    from .test_ec2_sites import aws_site

    with pytest.raises(InputError, match=message):
        parse_sites({"sites": [aws_site(**extra)]}, "sites.yaml")


def test_an_aws_site_in_a_capacity_block_is_built(tmp_path: Path) -> None:
    from .test_ec2_sites import aws_site

    spec = aws_site(market="capacity-block", capacity_reservation="cr-0123456789abcdef0")
    (site,) = build_sites(parse_sites({"sites": [spec]}, "s.yaml"), tmp_path).values()
    params = site.backend._run_params(LaunchRequest("a-1", ["true"]))  # type: ignore[attr-defined]
    assert params["InstanceMarketOptions"] == {"MarketType": "capacity-block"}


def test_no_credential_shows_in_a_sagemaker_site_its_backend_or_its_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "-token")
    with emulator() as url:
        spec = sagemaker_site(endpoint_url=url)
        (site,) = build_sites(parse_sites({"sites": [spec]}, "s.yaml"), tmp_path).values()
        make_sagemaker_site(url, tmp_path / "bucket")  # the staging bucket
        caplog.set_level(logging.DEBUG)
        backend = site.backend
        a = f"creds-{uuid.uuid4().hex[:8]}"  # moto keeps one state per test process
        result = backend.launch(LaunchRequest(a, ["python", "train.py"]))
        backend.observe([a, f"{a}-missing"])
        backend.health()
        backend.logs(a)
        assert result.ok, result.error
    for text in (repr(site), str(site), repr(backend), repr(site.spec), caplog.text):
        assert SECRET not in text


# --- through the reconciler -----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with emulator() as url:
        yield url


@pytest.fixture
def sm_site(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], EmulatedSageMaker]:
    """``sm_site(name)``: a SageMaker site on the emulator standing in for the declared
    site ``name``, boto3 seeing dummy credentials only."""
    aws_environment(monkeypatch)
    return lambda name: make_sagemaker_site(moto_url, tmp_path / name, name=name)


@pytest.fixture
def ec2_site(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Emulated]:
    aws_environment(monkeypatch)
    # a staging prefix of its own: what it holds, it put there itself
    return lambda name: make_site(moto_url, tmp_path / name, staging=f"s3://{BUCKET}/ec2-stage")


@pytest.mark.parametrize("code", ["ResourceLimitExceeded", "CapacityError"])
def test_a_run_sagemaker_refuses_moves_to_the_next_site(
    code: str,
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    sm_site: Callable[[str], EmulatedSageMaker],
) -> None:
    paris = sm_site("paris")
    paris.sagemaker.fail("create_training_job", client_error(code, "CreateTrainingJob"))
    reconciler = make_reconciler(SITES, {**fakes, "paris": paris.backend})
    run = store.submit("acme", workload())
    for _ in range(3):
        reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and (moved.site, moved.state) == ("frankfurt", RunState.RUNNING)
    said = " ".join(e.detail or "" for e in store.events(run.id))
    assert f"SageMaker {code}" in said


def test_a_run_given_up_by_managed_spot_resumes_on_an_ec2_site_with_its_checkpoint(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    sm_site: Callable[[str], EmulatedSageMaker],
    ec2_site: Callable[[str], Emulated],
) -> None:
    """paris is a SageMaker site: its job saved step 12 (SageMaker's checkpoint sync), was
    interrupted, and SageMaker gave up waiting for spot capacity. The run goes on at
    frankfurt, an EC2 site, whose own checkpoint prefix holds step 12 at launch."""
    paris, frankfurt = sm_site("paris"), ec2_site("frankfurt")
    backends: dict[str, Backend] = {**fakes, "paris": paris.backend, "frankfurt": frankfurt.backend}
    reconciler = make_reconciler(SITES, backends)
    run = store.submit("acme", workload(max_restarts=2))
    for _ in range(2):
        reconciler.step()
    assert store.get(run.id).state is RunState.RUNNING  # type: ignore[union-attr]
    attempt = f"{run.id}-a1"
    sent = paris.sagemaker.sent["create_training_job"]
    uri = f"s3://{BUCKET}/stage/checkpoints/{run.id}/"
    assert sent["CheckpointConfig"]["S3Uri"] == uri
    paris.s3.client.put_object(Bucket=BUCKET, Key=f"stage/checkpoints/{run.id}/step", Body=b"12\n")
    paris.sagemaker.move(job_name(attempt), "InProgress", "Interrupted")
    reconciler.step()
    assert store.get(run.id).site == "paris"  # type: ignore[union-attr]  # SageMaker waits
    paris.sagemaker.move(job_name(attempt), "Stopped", "MaxWaitTimeExceeded")
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt" and moved.restarts == 1
    key = f"ec2-stage/checkpoints/{run.id}/step"
    assert frankfurt.s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"12\n"
    events = " ".join(e.detail or "" for e in store.events(run.id))
    assert "MaxWaitTimeInSeconds" in events


def test_a_run_interrupted_on_ec2_resumes_as_a_sagemaker_job_with_its_checkpoint(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    sm_site: Callable[[str], EmulatedSageMaker],
    ec2_site: Callable[[str], Emulated],
) -> None:
    """The other way: paris (EC2) saved step 7 and was interrupted; frankfurt (SageMaker)
    creates the next attempt's job with step 7 at its CheckpointConfig.S3Uri."""
    paris, frankfurt = ec2_site("paris"), sm_site("frankfurt")
    backends: dict[str, Backend] = {**fakes, "paris": paris.backend, "frankfurt": frankfurt.backend}
    reconciler = make_reconciler(SITES, backends)
    run = store.submit("acme", workload(max_restarts=2))
    for _ in range(2):
        reconciler.step()
    key = f"ec2-stage/checkpoints/{run.id}/step"
    paris.s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"7\n")  # the instance's sync
    paris.interrupt()
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt"
    uri = frankfurt.sagemaker.sent["create_training_job"]["CheckpointConfig"]["S3Uri"]
    assert uri == f"s3://{BUCKET}/stage/checkpoints/{run.id}/"
    key = f"stage/checkpoints/{run.id}/step"
    assert frankfurt.s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"7\n"


def test_a_health_run_never_reaches_a_us_sagemaker_site_nor_its_bucket(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    sm_site: Callable[[str], EmulatedSageMaker],
) -> None:
    """virginia (US, AWS, the cheapest site) is a SageMaker site: a health run goes to an
    EU site of a provider without CLOUD Act exposure, no job is created for it and nothing
    of it, checkpoint included, reaches virginia's bucket; a public run does go there."""
    virginia = sm_site("virginia")
    reconciler = make_reconciler(SITES, {**fakes, "virginia": virginia.backend})
    health = store.submit("acme", workload("scan", cls="health"))
    for _ in range(2):
        reconciler.step()
    placed = store.get(health.id)
    assert placed is not None and placed.site in ("paris", "frankfurt")
    assert virginia.sagemaker.calls["create_training_job"] == 0
    listed = virginia.s3.client.list_objects_v2(Bucket=BUCKET, Prefix="stage/")
    assert not [o["Key"] for o in listed.get("Contents", []) if health.id in o["Key"]]

    public = store.submit("acme", workload("crawl", cls="public"))
    reconciler.step()
    assert store.get(public.id).site == "virginia"  # type: ignore[union-attr]
    assert virginia.sagemaker.calls["create_training_job"] == 1
    listed = virginia.s3.client.list_objects_v2(Bucket=BUCKET, Prefix="stage/")
    assert all(health.id not in o["Key"] for o in listed.get("Contents", []))


# --- what a SageMaker site runs -------------------------------------------------------------


def _sites_with_sagemaker_virginia() -> list[SiteSpec]:
    """The test sites, virginia (the cheapest, public data allowed) a SageMaker site."""
    virginia = SiteSpec(
        **{**SITES[2].model_dump(exclude_none=True), "backend": "sagemaker"},
        role_arn=ROLE,
        training_image=TRAINING_IMAGE,
        staging=f"s3://{BUCKET}/stage",
    )
    return [SITES[0], SITES[1], virginia]


@pytest.mark.parametrize(
    ("kind", "site"),
    [("training", "virginia"), ("batch", "virginia"), ("inference", "paris")],
)
def test_a_sagemaker_site_runs_jobs_that_end_and_no_service(
    snapshot: CatalogSnapshot, policy: Policy, kind: str, site: str
) -> None:
    workload = parse_workload(
        {
            "name": "w",
            "kind": kind,
            "resources": {"accelerators": "cpu:1"},
            "data": {"class": "public"},
            "run": {"command": ["python", "serve.py"]},
        }
    )
    placer = SitePlacer(_sites_with_sagemaker_virginia(), snapshot, policy)
    choice = placer.place(workload)
    assert choice.site == site
    kept_off = {r.reason for r in choice.rejections if "virginia" in r.message}
    assert kept_off == ({Reason.SITE_KIND} if kind == "inference" else set())
    if kind == "inference":
        assert "virginia runs batch and training workloads only, not inference" in (
            choice.explain()
        )
        assert "virginia" not in placer.fitting(workload, list(placer.sites))


@pytest.mark.parametrize(("spot", "site"), [(True, "virginia"), (False, "paris")])
def test_a_spot_site_takes_only_runs_that_tolerate_spot(
    snapshot: CatalogSnapshot, policy: Policy, spot: bool, site: str
) -> None:
    """virginia, the cheapest site for public data, sells spot only (managed spot): a run
    that does not tolerate spot goes to the next site, told why."""
    specs = _sites_with_sagemaker_virginia()
    specs[2] = specs[2].model_copy(update={"market": "spot"})
    workload = parse_workload(
        {
            "name": "w",
            "kind": "training",
            "resources": {"accelerators": "cpu:1", "spot": spot},
            "data": {"class": "public"},
            "run": {"command": ["python", "train.py"]},
        }
    )
    choice = SitePlacer(specs, snapshot, policy).place(workload)
    assert choice.site == site
    if not spot:
        (why,) = [r for r in choice.rejections if "virginia" in r.message]
        assert why.reason is Reason.NOT_SOLD and "spot not allowed" in why.message
