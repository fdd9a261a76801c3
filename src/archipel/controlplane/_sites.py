"""Sites: places that can really run work now, each mapped to a provider, region
and country so that policy applies to it exactly as to a catalog offer.

A sites file::

    sites:
      - name: paris-lab
        backend: local                 # local | slurm | aws | sagemaker
        provider: scaleway             # a registry id: its legal facts apply
        region: fr-par
        country: FR
        accelerators: cpu:1            # what one slot offers, MODEL:COUNT
        slots: 4                       # attempts at once
        price_per_hour: 0.50           # per slot, for ranking (default 0)
        address: lab1.example.lan      # how services here are reached (default below)
        run_as: archipel-paris         # local: the unprivileged user its attempts run as
      - name: slurm-de
        backend: slurm
        partition: eu-de
        provider: ionos
        region: de/fra
        country: DE
        accelerators: cpu:1
        slots: 2
      - name: aws-ireland
        backend: aws                   # one EC2 instance per attempt (docs/aws.md)
        provider: aws
        region: eu-west-1
        zone: eu-west-1a               # optional: one availability zone
        country: IE
        accelerators: T4:1
        instance_type: g4dn.xlarge
        market: spot                   # on-demand (default) | spot | capacity-block
        image: ami-0123456789abcdef0   # an AMI in that region, with the AWS CLI
        staging: s3://my-bucket/archipel   # workdirs, logs, exit statuses
        instance_profile: archipel-attempt # lets the instance use the staging
        capacity_reservation: cr-0123456789abcdef0  # optional; a capacity block's id
        subnet: subnet-0123abcd        # optional (default: the default VPC's)
        security_group: sg-0123abcd    # optional (default: the VPC's default)
        root_volume_gib: 100           # optional (default: the image's)
        slots: 4
      - name: sagemaker-ireland
        backend: sagemaker             # one training job per attempt (docs/aws.md)
        provider: aws
        region: eu-west-1
        country: IE
        accelerators: A10G:1
        role_arn: arn:aws:iam::123456789012:role/archipel-training
        training_image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/train:1
        staging: s3://my-bucket/archipel   # workdirs, outputs, checkpoints
        instance_type: ml.g5.xlarge    # optional (default: follows accelerators)
        market: spot                   # on-demand (default) | spot (managed spot)
        max_runtime_seconds: 86400     # optional: StoppingCondition.MaxRuntimeInSeconds
        spot_wait_seconds: 3600        # optional: how long spot capacity may be waited for
        volume_gib: 50                 # optional

An AWS or SageMaker site's credentials come from the standard AWS chain (environment,
``AWS_PROFILE``, the instance role of the server): the sites file names none, and
a field that looks like one is refused. ``endpoint_url`` points a site at an
emulator (the tests use moto on loopback).

A service running on a site is reached at the site's ``address`` when it
declares one (a LAN name, a load balancer), else at the host its backend
observed (a Slurm node), else, on a local site, at ``127.0.0.1``.

``run_as`` (local sites only) names an existing unprivileged user: the site's
attempts run as that user, so they cannot read the server's files (its token,
its database) nor the output of other attempts; the server must then run as
root. A Slurm site's jobs run as the account that submits them, the server's
(see docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from archipel.backends import (
    Backend,
    Ec2Backend,
    Ec2Config,
    LocalBackend,
    SageMakerBackend,
    SageMakerConfig,
)
from archipel.controlplane._records import AttemptTerms
from archipel.core import (
    Amount,
    DocumentError,
    InputError,
    StrictModel,
    WorkloadKind,
    canonical_accelerator,
    parse_accelerator_spec,
    validate,
)


class SitesFileError(DocumentError):
    """A sites file whose fields do not validate; ``problems`` names each one."""

    what = "sites file"


class SiteSpec(StrictModel):
    """One site as declared in the sites file."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    backend: Literal["local", "slurm", "aws", "sagemaker"]
    provider: Annotated[str, Field(min_length=1)]
    region: str = ""
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    accelerators: str = "cpu:1"
    slots: Annotated[int, Field(ge=1, le=100_000)] = 1
    price_per_hour: Amount = Decimal(0)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    partition: str | None = None  # slurm
    state_dir: str | None = None  # local: where attempts live (default: the data directory)
    # how services on this site are reached: a host name or an IP address
    address: Annotated[str, Field(max_length=255, pattern=r"^[A-Za-z0-9._:\[\]-]+$")] | None = None
    # local: the unprivileged OS user the site's attempts run as (default: the server's)
    run_as: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] | None = None
    # aws: one EC2 instance per attempt (see archipel.backends.Ec2Backend, docs/aws.md);
    # sagemaker: one training job per attempt (archipel.backends.SageMakerBackend)
    instance_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$")] | None = None
    image: Annotated[str, Field(pattern=r"^ami-[0-9a-f]{8,17}$")] | None = None
    staging: (
        Annotated[
            str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")
        ]
        | None
    ) = None
    market: Literal["on-demand", "spot", "capacity-block"] = "on-demand"
    zone: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$")] | None = None
    capacity_reservation: Annotated[str, Field(pattern=r"^cr-[0-9a-f]{8,17}$")] | None = None
    subnet: Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")] | None = None
    security_group: Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")] | None = None
    instance_profile: Annotated[str, Field(pattern=r"^[A-Za-z0-9+=,.@_-]{1,128}$")] | None = None
    root_volume_gib: Annotated[int, Field(ge=8, le=16_384)] | None = None
    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s/@]+(/.*)?$")] | None = None
    # sagemaker only
    role_arn: (
        Annotated[
            str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
        ]
        | None
    ) = None
    training_image: (
        Annotated[
            str,
            Field(
                max_length=255,
                pattern=r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})?$",
            ),
        ]
        | None
    ) = None
    max_runtime_seconds: Annotated[int, Field(ge=60, le=28 * 86_400)] | None = None
    spot_wait_seconds: Annotated[int, Field(ge=0, le=28 * 86_400)] | None = None
    volume_gib: Annotated[int, Field(ge=1, le=16_384)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            named = sorted(
                str(k)
                for k in data
                if any(w in str(k).lower() for w in ("secret", "access_key", "token", "password"))
            )
            if named:
                raise ValueError(
                    f"{', '.join(named)}: a sites file holds no credentials; an AWS site "
                    "takes them from the standard AWS chain (AWS_PROFILE, the environment, "
                    "the server's instance role): remove the field"
                )
        return data

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, value: str) -> str:
        try:
            parse_accelerator_spec(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def runs(self) -> frozenset[WorkloadKind]:
        """The kinds of workload the site runs: a SageMaker site runs jobs that end
        (training and batch), not services; every other site runs all three."""
        if self.backend == "sagemaker":
            return frozenset({WorkloadKind.TRAINING, WorkloadKind.BATCH})
        return frozenset(WorkloadKind)

    def terms(self) -> AttemptTerms:
        """What one slot of this site offers, at its price: an attempt placed here is
        metered at these terms (a CPU slot has no GPUs)."""
        accel = parse_accelerator_spec(self.accelerators)
        model = canonical_accelerator(accel.model)
        return AttemptTerms(
            provider=self.provider,
            region=self.region,
            country=self.country,
            accelerator=model,
            gpus=Decimal(0) if model.lower() == "cpu" else Decimal(str(accel.count)),
            price_per_hour=self.price_per_hour,
            currency=self.currency,
        )

    @model_validator(mode="after")
    def _run_as_is_local(self) -> SiteSpec:
        if self.run_as is not None and self.backend != "local":
            raise ValueError(
                "run_as applies to local sites only: a Slurm job runs as the account that "
                "submits it (the server's); remove run_as (see docs/security.md)"
            )
        return self

    @model_validator(mode="after")
    def _cloud_fields(self) -> SiteSpec:
        given = [f for f in _CLOUD_FIELDS if f != "market" and getattr(self, f) is not None]
        if self.market != "on-demand":
            given.append("market")
        misplaced = [f for f in given if self.backend not in _CLOUD_FIELDS[f]]
        if misplaced:
            groups: dict[tuple[str, ...], list[str]] = {}
            for f in misplaced:
                groups.setdefault(_CLOUD_FIELDS[f], []).append(f)
            said = "; ".join(
                f"{', '.join(sorted(fs))} apply to {' and '.join(kinds)} sites only"
                for kinds, fs in sorted(groups.items())
            )
            raise ValueError(f"{said}: remove them or set the backend they belong to")
        if self.backend == "aws":
            self._check_aws()
        elif self.backend == "sagemaker":
            self._check_sagemaker()
        return self

    def _check_region(self) -> None:
        if not _AWS_REGION.match(self.region):
            raise ValueError(
                f"an {self.backend} site needs region: an AWS region such as eu-west-1, "
                f"not {self.region!r}"
            )

    def _check_aws(self) -> None:
        missing = [f for f in ("instance_type", "image", "staging") if getattr(self, f) is None]
        if missing:
            raise ValueError(
                f"an aws site needs {', '.join(missing)} (see docs/aws.md): instance_type "
                "(g5.xlarge), image (an AMI id in the region) and staging (s3://BUCKET/PREFIX)"
            )
        self._check_region()
        if self.instance_type is not None and self.instance_type.startswith("ml."):
            raise ValueError(
                f"instance_type {self.instance_type} is a SageMaker type: an aws site runs EC2 "
                "instances (g5.xlarge); for SageMaker set backend: sagemaker"
            )
        if self.zone is not None and not self.zone.startswith(self.region):
            raise ValueError(f"zone {self.zone} is not in region {self.region}")
        problem = Ec2Config.market_problem(self.market, self.capacity_reservation)
        if problem is not None:
            raise ValueError(problem)

    def _check_sagemaker(self) -> None:
        needed = ("role_arn", "training_image", "staging")
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(
                f"a sagemaker site needs {', '.join(missing)} (see docs/aws.md): role_arn "
                "(the jobs' execution role), training_image (an ECR image URI) and staging "
                "(s3://BUCKET/PREFIX)"
            )
        self._check_region()
        config = _sagemaker_config(self)  # its own checks: what SageMaker would refuse
        if config.instance_type is None and config.instance_type_for(self.accelerators) is None:
            raise ValueError(
                f"a sagemaker site needs instance_type: Archipel knows no SageMaker type "
                f"with {self.accelerators} (ml.p4d.24xlarge has A100:8, for instance)"
            )


#: cloud fields -> the site backends they apply to
_CLOUD_FIELDS: Mapping[str, tuple[str, ...]] = {
    "instance_type": ("aws", "sagemaker"),
    "staging": ("aws", "sagemaker"),
    "subnet": ("aws", "sagemaker"),
    "security_group": ("aws", "sagemaker"),
    "endpoint_url": ("aws", "sagemaker"),
    "market": ("aws", "sagemaker"),
    "image": ("aws",),
    "zone": ("aws",),
    "capacity_reservation": ("aws",),
    "instance_profile": ("aws",),
    "root_volume_gib": ("aws",),
    "role_arn": ("sagemaker",),
    "training_image": ("sagemaker",),
    "max_runtime_seconds": ("sagemaker",),
    "spot_wait_seconds": ("sagemaker",),
    "volume_gib": ("sagemaker",),
}
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


class SitesDoc(StrictModel):
    sites: Annotated[list[SiteSpec], Field(min_length=1)]


@dataclass(frozen=True)
class Site:
    """A declared site with the backend that reaches it."""

    spec: SiteSpec
    backend: Backend

    @property
    def name(self) -> str:
        return self.spec.name


def parse_sites(document: Any, source: str = "<sites>") -> list[SiteSpec]:
    """Validate a sites document; names must be unique."""
    doc = validate(SitesDoc, document, source, SitesFileError, "a mapping with sites")
    names = [s.name for s in doc.sites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{source}: site names must be unique: {', '.join(dupes)}")
    return list(doc.sites)


def _local(spec: SiteSpec, data_dir: Path) -> Backend:
    state = Path(spec.state_dir) if spec.state_dir else data_dir / "sites" / spec.name
    return LocalBackend(spec.name, state, run_as=spec.run_as)


def _slurm(spec: SiteSpec, data_dir: Path) -> Backend:
    from archipel.backends import SlurmBackend

    if not spec.partition:
        raise InputError(f"site {spec.name}: a slurm site needs `partition`")
    backend: Backend = SlurmBackend(spec.name, spec.partition, data_dir / "sites" / spec.name)
    return backend


def _aws(spec: SiteSpec, data_dir: Path) -> Backend:
    # checked by SiteSpec
    assert spec.instance_type is not None
    assert spec.image is not None
    assert spec.staging is not None
    config = Ec2Config(
        region=spec.region,
        image=spec.image,
        instance_type=spec.instance_type,
        staging=spec.staging,
        market=spec.market,
        zone=spec.zone,
        capacity_reservation=spec.capacity_reservation,
        subnet=spec.subnet,
        security_group=spec.security_group,
        instance_profile=spec.instance_profile,
        root_volume_gib=spec.root_volume_gib,
        endpoint_url=spec.endpoint_url,
    )
    backend: Backend = Ec2Backend(spec.name, config, data_dir / "sites" / spec.name)
    return backend


def _sagemaker_config(spec: SiteSpec) -> SageMakerConfig:
    """The backend configuration of a sagemaker site (a ``ValueError`` says what is wrong)."""
    # checked by SiteSpec before
    assert spec.role_arn is not None
    assert spec.training_image is not None
    assert spec.staging is not None
    if spec.market == "capacity-block":
        raise ValueError(
            "market capacity-block is for aws sites; a sagemaker site is on-demand or spot"
        )
    defaults = SageMakerConfig(spec.region, spec.role_arn, spec.training_image, spec.staging)
    return SageMakerConfig(
        region=spec.region,
        role_arn=spec.role_arn,
        training_image=spec.training_image,
        staging=spec.staging,
        instance_type=spec.instance_type,
        market=spec.market,
        max_runtime_seconds=spec.max_runtime_seconds or defaults.max_runtime_seconds,
        spot_wait_seconds=(
            defaults.spot_wait_seconds if spec.spot_wait_seconds is None else spec.spot_wait_seconds
        ),
        volume_gib=spec.volume_gib or defaults.volume_gib,
        subnet=spec.subnet,
        security_group=spec.security_group,
        endpoint_url=spec.endpoint_url,
    )


def _sagemaker(spec: SiteSpec, data_dir: Path) -> Backend:
    config = _sagemaker_config(spec)
    backend: Backend = SageMakerBackend(spec.name, config, data_dir / "sites" / spec.name)
    return backend


#: backend kind -> factory (an explicit table: no names built from strings)
BACKEND_FACTORIES: Mapping[str, Callable[[SiteSpec, Path], Backend]] = {
    "local": _local,
    "slurm": _slurm,
    "aws": _aws,
    "sagemaker": _sagemaker,
}


def build_sites(specs: list[SiteSpec], data_dir: Path) -> dict[str, Site]:
    """Each declared site with its backend, built at start-up (errors surface here)."""
    return {s.name: Site(s, BACKEND_FACTORIES[s.backend](s, data_dir)) for s in specs}
