"""Fixtures for the control plane: a store on SQLite or PostgreSQL, sites on fake backends."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.postgres import fresh_database

from archipel.backends import Backend, FakeBackend, Observation, SlurmBackend
from archipel.controlplane import Reconciler, Site, SitePlacer, SiteSpec, Store
from archipel.core import CatalogSnapshot
from archipel.policy import Policy


def _postgres_store() -> Iterator[Store]:
    for url in fresh_database():
        store = Store(url)
        store.migrate()
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.db'}")
        s.migrate()
        yield s
        s.close()
    else:
        yield from _postgres_store()


SITES = [
    SiteSpec(
        name="paris",
        backend="local",
        provider="scaleway",
        region="fr-par",
        country="FR",
        accelerators="cpu:1",
        slots=2,
        price_per_hour=1,
    ),
    SiteSpec(
        name="frankfurt",
        backend="local",
        provider="ionos",
        region="de/fra",
        country="DE",
        accelerators="cpu:1",
        slots=2,
        price_per_hour=2,
    ),
    SiteSpec(
        name="virginia",
        backend="local",
        provider="aws",
        region="us-east-1",
        country="US",
        accelerators="cpu:1",
        slots=2,
        price_per_hour=0.5,
    ),
]


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {s.name: FakeBackend(s.name) for s in SITES}


MakeReconciler = Callable[..., Reconciler]


@pytest.fixture
def make_reconciler(
    store: Store,
    fakes: dict[str, FakeBackend],
    snapshot: CatalogSnapshot,
    policy: Policy,
    tmp_path: Path,
) -> MakeReconciler:
    """``make(specs=SITES, backends=fakes, **reconciler_options)``: a reconciler on the store
    (each call a new one, as a restarted or second control plane would be)."""

    def make(
        specs: Sequence[SiteSpec] = SITES,
        backends: Mapping[str, Backend] | None = None,
        **options: Any,
    ) -> Reconciler:
        chosen: Mapping[str, Backend] = fakes if backends is None else backends
        sites = {s.name: Site(s, chosen[s.name]) for s in specs}
        placer = SitePlacer(list(specs), snapshot, policy)
        return Reconciler(store, sites, placer, tmp_path / "ckpt", **options)

    return make


@pytest.fixture
def reconciler(make_reconciler: MakeReconciler) -> Reconciler:
    return make_reconciler()


class HostedFake(FakeBackend):
    """A fake that reports its attempts running on a named host (as Slurm does)."""

    def __init__(self, name: str, host: Callable[[], str | None]) -> None:
        super().__init__(name)
        self.host = host

    def observe(self, attempt_ids: Sequence[str]) -> dict[str, Observation]:
        return {
            a: dataclasses.replace(obs, host=self.host())
            for a, obs in super().observe(attempt_ids).items()
        }


#: two partitions of the test Slurm cluster (scripts/slurm/up.sh) as two sites
SLURM_SITES = [
    SiteSpec(
        name="slurm-fr",
        backend="slurm",
        partition="eu-fr",
        provider="scaleway",
        region="fr-par",
        country="FR",
        accelerators="cpu:1",
        slots=2,
        price_per_hour=1,
    ),
    SiteSpec(
        name="slurm-de",
        backend="slurm",
        partition="eu-de",
        provider="stackit",
        region="eu01",
        country="DE",
        accelerators="cpu:1",
        slots=2,
        price_per_hour=2,
    ),
]


def slurm_backend(spec: SiteSpec, slurm_conf: Path, folder: Path) -> SlurmBackend:
    """The site's partition of the test cluster; jobs get 3 minutes at most."""
    return SlurmBackend(
        spec.name, spec.partition or "", folder, slurm_conf=slurm_conf, sbatch_args=("--time=3",)
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    """A real `archipel server` on the example sites, as the README starts it."""
    from archipel.backends import LocalBackend

    from .test_end_to_end import ROOT, Server

    s = Server(tmp_path / "home", ROOT / "examples/controlplane/sites.yaml")
    s.home.mkdir()
    s.start()
    yield s
    s.stop()
    for site in ("paris", "frankfurt"):
        folder = s.home / "sites" / site
        if folder.exists():
            LocalBackend(site, folder).kill_all()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (not migrated), dropped afterwards."""
    yield from fresh_database()
