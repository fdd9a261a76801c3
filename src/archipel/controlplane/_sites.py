"""Sites: places that can really run work now, each mapped to a provider, region
and country so that policy applies to it exactly as to a catalog offer.

A sites file::

    sites:
      - name: paris-lab
        backend: local                 # local | slurm
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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from archipel.backends import Backend, LocalBackend
from archipel.controlplane._records import AttemptTerms
from archipel.core import (
    Amount,
    DocumentError,
    InputError,
    StrictModel,
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
    backend: Literal["local", "slurm"]
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

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, value: str) -> str:
        try:
            parse_accelerator_spec(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

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


#: backend kind -> factory (an explicit table: no names built from strings)
BACKEND_FACTORIES: Mapping[str, Callable[[SiteSpec, Path], Backend]] = {
    "local": _local,
    "slurm": _slurm,
}


def build_sites(specs: list[SiteSpec], data_dir: Path) -> dict[str, Site]:
    """Each declared site with its backend, built at start-up (errors surface here)."""
    return {s.name: Site(s, BACKEND_FACTORIES[s.backend](s, data_dir)) for s in specs}
