"""The console over a control plane on SQLite with fake sites, signed in as anyone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.controlplane.conftest import SITES

from archipel.backends import FakeBackend
from archipel.cli._server import _plan_planner
from archipel.console import PREFIX, FleetPlanner, GatewayMetrics, Simulator, Spend, mount
from archipel.controlplane import Reconciler, Site, SitePlacer, Store
from archipel.controlplane._api import create_app
from archipel.core import CatalogSnapshot
from archipel.placement import Planner
from archipel.policy import Policy

KEY = b"k" * 32
SPEC = {
    "name": "train",
    "kind": "training",
    "resources": {"accelerators": "cpu:1"},
    "data": {"class": "personal"},
    "run": {"command": ["python", "train.py"]},
}


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    s.migrate()
    s.token_cache_seconds = 0  # a revocation shows at once
    yield s
    s.close()


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {s.name: FakeBackend(s.name) for s in SITES}


@pytest.fixture
def reconciler(
    store: Store,
    fakes: dict[str, FakeBackend],
    snapshot: CatalogSnapshot,
    policy: Policy,
    tmp_path: Path,
) -> Reconciler:
    sites = {s.name: Site(s, fakes[s.name]) for s in SITES}
    return Reconciler(store, sites, SitePlacer(SITES, snapshot, policy), tmp_path / "ckpt")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def plans(snapshot: CatalogSnapshot, policy: Policy) -> Callable[[], Planner]:
    """The plan form's engine, made as ``archipel server`` makes it."""
    return _plan_planner(snapshot, policy)


@pytest.fixture
def spend() -> Spend | None:
    """The spend view's figures: none (a server with ``--ledger off``) unless a test says."""
    return None


@pytest.fixture
def simulator() -> Simulator | None:
    """What runs uploaded scenarios: nothing (a server that runs none) unless a test says."""
    return None


@pytest.fixture
def fleet() -> FleetPlanner | None:
    """What plans uploaded fleet files: nothing (no fleet form) unless a test says."""
    return None


@pytest.fixture
def gateway() -> GatewayMetrics | None:
    """Where the gateway's metrics are: nowhere (no gateway configured) unless a test says."""
    return None


@pytest.fixture
def api_extras() -> Callable[[FastAPI], None]:
    """What a test adds to the API before the console is mounted (nothing by default)."""
    return lambda _app: None


@pytest.fixture
def compose(
    store: Store,
    reconciler: Reconciler,
    clock: Clock,
    plans: Callable[[], Planner],
    spend: Spend | None,
    simulator: Simulator | None,
    fleet: FleetPlanner | None,
    gateway: GatewayMetrics | None,
    api_extras: Callable[[FastAPI], None],
) -> Callable[[], TestClient]:
    """A new browser on the API with the console mounted, as ``archipel server`` composes it."""

    def composed() -> TestClient:
        app = create_app(store, reconciler, open_prefixes=(PREFIX,))
        mount(
            app,
            store,
            reconciler,
            key=KEY,
            clock=clock,
            planner=plans,
            spend=spend,
            simulator=simulator,
            fleet=fleet,
            gateway=gateway,
        )
        api_extras(app)
        return TestClient(app, follow_redirects=False)

    return composed


@pytest.fixture
def app_client(compose: Callable[[], TestClient]) -> TestClient:
    return compose()


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


SignIn = Callable[..., TestClient]


@pytest.fixture
def sign_in(store: Store, compose: Callable[[], TestClient]) -> Callable[..., TestClient]:
    """``sign_in(tenant, role)``: a new browser (its own cookies), signed in with a new token."""

    def signed(tenant: str = "acme", role: str = "submitter") -> TestClient:
        browser = compose()
        token = store.create_token(tenant, role)
        form = browser.get(f"{PREFIX}/login")
        done = browser.post(
            f"{PREFIX}/login", data={"token": token, "csrf": csrf_of(form.text), "next": ""}
        )
        assert done.status_code == 303, done.text
        return browser

    return signed
