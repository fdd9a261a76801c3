"""AWS sites: declared in sites.yaml, validated, built into an EC2 backend, and a run
that EC2 refuses (capacity, quota) moves to another site through the reconciler.

The EC2 side is moto on a loopback port (``tests/aws_emulator.py``), with dummy
credentials only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aws_emulator import (
    BUCKET,
    IMAGE,
    REGION,
    Emulated,
    aws_environment,
    client_error,
    emulator,
    make_site,
)

from archipel.backends import Backend, Ec2Backend, FakeBackend
from archipel.controlplane import Store, build_sites, parse_sites
from archipel.core import InputError, RunState

from .conftest import SITES, MakeReconciler
from .test_reconciler import workload

#: what a leaked credential would look like in a repr or a log line
SECRET = "wJalrXUtnFEMI-not-a-real-key-K7MDENG"


def aws_site(**extra: Any) -> dict[str, Any]:
    return {
        "name": "aws-ireland",
        "backend": "aws",
        "provider": "aws",
        "region": REGION,
        "country": "IE",
        "accelerators": "T4:1",
        "instance_type": "g4dn.xlarge",
        "image": "ami-0123456789abcdef0",
        "staging": f"s3://{BUCKET}/archipel",
        **extra,
    }


# --- declaring ---------------------------------------------------------------------------


def test_an_aws_site_is_declared_and_built_into_an_ec2_backend(tmp_path: Path) -> None:
    specs = parse_sites(
        {"sites": [aws_site(zone="eu-west-1b", market="spot", root_volume_gib=100)]}, "s.yaml"
    )
    (site,) = build_sites(specs, tmp_path).values()
    assert isinstance(site.backend, Ec2Backend)
    config = site.backend.config
    assert (config.region, config.zone, config.market) == ("eu-west-1", "eu-west-1b", "spot")
    assert (config.instance_type, config.root_volume_gib) == ("g4dn.xlarge", 100)
    assert site.backend.state_dir == tmp_path / "sites" / "aws-ireland"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(aws_site(image=None), "an aws site needs image", id="no-image"),
        pytest.param(aws_site(staging=None), "needs staging", id="no-staging"),
        pytest.param(aws_site(region="Ireland"), "an AWS region such as", id="bad-region"),
        pytest.param(aws_site(zone="us-east-1a"), "not in region eu-west-1", id="zone-elsewhere"),
        pytest.param(aws_site(market="reserved"), "market", id="bad-market"),
        pytest.param(aws_site(image="ubuntu-22.04"), "image", id="not-an-ami"),
        pytest.param(aws_site(staging="/data/stage"), "staging", id="staging-not-s3"),
        pytest.param(aws_site(staging="s3://b-1/a b"), "staging", id="staging-with-a-space"),
        pytest.param(
            aws_site(capacity_reservation="my-block"), "capacity_reservation", id="bad-reservation"
        ),
        pytest.param(
            aws_site(aws_secret_access_key=SECRET),
            "a sites file holds no credentials",
            id="a-secret",
        ),
        pytest.param(
            aws_site(aws_access_key_id="AKIA0000"), "standard AWS chain", id="an-access-key"
        ),
        pytest.param(
            {**aws_site(backend="local"), "partition": None},
            "apply to aws sites only",
            id="aws-fields-on-a-local-site",
        ),
    ],
)
def test_a_bad_aws_site_is_refused_with_what_to_change(spec: dict[str, Any], message: str) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(InputError, match=message):
        parse_sites({"sites": [spec]}, "sites.yaml")


def test_a_refused_secret_is_not_echoed_back(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        parse_sites({"sites": [aws_site(aws_secret_access_key=SECRET)]}, "sites.yaml")
    assert SECRET not in str(caught.value)


def test_no_credential_shows_in_a_site_its_backend_or_its_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "-token")
    with emulator() as url:
        spec = aws_site(image=IMAGE, endpoint_url=url)
        (site,) = build_sites(parse_sites({"sites": [spec]}, "s.yaml"), tmp_path).values()
        make_site(url, tmp_path / "bucket")  # the staging bucket
        caplog.set_level(logging.DEBUG)
        backend = site.backend
        result = backend.launch(_request("a-1"))
        backend.observe(["a-1", "a-2"])
        backend.health()
        backend.cancel("a-1")
        assert result.ok, result.error
    shown = [repr(site), str(site), repr(backend), repr(site.spec), caplog.text]
    for text in shown:
        assert SECRET not in text


def _request(a: str) -> Any:
    from archipel.backends import LaunchRequest

    return LaunchRequest(a, ["python", "train.py"])


# --- failover through the reconciler ------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with emulator() as url:
        yield url


@pytest.fixture
def ec2_site(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Emulated]:
    """``ec2_site(name)``: an EC2 site on the emulator standing in for the declared site
    ``name``, boto3 seeing dummy credentials only."""
    aws_environment(monkeypatch)
    return lambda name: make_site(moto_url, tmp_path / name)


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "VcpuLimitExceeded"])
def test_a_run_ec2_refuses_moves_to_the_next_site(
    code: str,
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    ec2_site: Callable[[str], Emulated],
) -> None:
    """paris (the cheapest site the run's policy allows) is an EC2 site whose launch is
    refused: the run is placed on frankfurt, and paris keeps no instance."""
    paris = ec2_site("paris")
    paris.ec2.fail("run_instances", client_error(code, "RunInstances", "none left"))
    backends: dict[str, Backend] = {**fakes, "paris": paris.backend}
    reconciler = make_reconciler(SITES, backends)
    run = store.submit("acme", workload())
    for _ in range(3):
        reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt"
    assert moved.state is RunState.RUNNING
    assert fakes["frankfurt"].launches == 1
    assert paris.ec2.calls["run_instances"] == 1
    assert paris.instances() == []
    said = " ".join(e.detail or "" for e in store.events(run.id))
    assert f"EC2 {code}" in said


def test_a_run_on_an_ec2_site_runs_there_when_ec2_takes_it(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    ec2_site: Callable[[str], Emulated],
) -> None:
    paris = ec2_site("paris")
    reconciler = make_reconciler(SITES, {**fakes, "paris": paris.backend})
    run = store.submit("acme", workload())
    for _ in range(3):
        reconciler.step()
    now = store.get(run.id)
    assert now is not None and (now.site, now.state) == ("paris", RunState.RUNNING)
    (instance,) = paris.instances("running")
    assert {t["Key"]: t["Value"] for t in instance["Tags"]}["archipel:run"] == run.id


def test_a_run_interrupted_on_ec2_resumes_elsewhere_with_its_checkpoint(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    ec2_site: Callable[[str], Emulated],
) -> None:
    """The attempt on paris (EC2) saved step 12 to S3 before a spot interruption: the run
    goes on at frankfurt, and its checkpoint folder holds step 12 when it is launched."""
    paris = ec2_site("paris")
    reconciler = make_reconciler(SITES, {**fakes, "paris": paris.backend})
    run = store.submit("acme", workload(max_restarts=2))
    for _ in range(2):
        reconciler.step()
    key = f"stage/checkpoints/{run.id}/step"
    paris.s3.client.put_object(Bucket=BUCKET, Key=key, Body=b"12\n")  # the instance's sync
    paris.interrupt()
    reconciler.step()
    moved = store.get(run.id)
    assert moved is not None and moved.site == "frankfurt" and moved.restarts == 1
    env = fakes["frankfurt"]._jobs[f"{run.id}-a2"].request.env
    assert (Path(env["ARCHIPEL_CHECKPOINT_DIR"]) / "step").read_text() == "12\n"


def test_a_health_run_never_reaches_a_us_ec2_site_nor_its_bucket(
    store: Store,
    fakes: dict[str, FakeBackend],
    make_reconciler: MakeReconciler,
    ec2_site: Callable[[str], Emulated],
) -> None:
    """virginia (US, AWS, the cheapest site) is an EC2 site: a health run goes to an EU
    site of a provider without CLOUD Act exposure, and nothing of it, checkpoint included,
    is written to virginia's staging bucket; a public run does go there."""
    virginia = ec2_site("virginia")
    reconciler = make_reconciler(SITES, {**fakes, "virginia": virginia.backend})
    health = store.submit("acme", workload("scan", cls="health"))
    for _ in range(2):
        reconciler.step()
    placed = store.get(health.id)
    assert placed is not None and placed.site in ("paris", "frankfurt")
    assert virginia.instances() == []
    listed = virginia.s3.client.list_objects_v2(Bucket=BUCKET, Prefix="stage/")
    assert not [o["Key"] for o in listed.get("Contents", []) if health.id in o["Key"]]

    public = store.submit("acme", workload("crawl", cls="public"))
    reconciler.step()
    assert store.get(public.id).site == "virginia"  # type: ignore[union-attr]
    listed = virginia.s3.client.list_objects_v2(Bucket=BUCKET, Prefix="stage/")
    assert all(health.id not in o["Key"] for o in listed.get("Contents", []))
