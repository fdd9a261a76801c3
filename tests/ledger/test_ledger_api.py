"""The ledger's routes as the control plane serves them (`archipel server --finops`): admins only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from archipel.cli._ledger_commitments import mount_finops
from archipel.controlplane import Reconciler, SitePlacer, Store
from archipel.controlplane._api import create_app
from archipel.core import CatalogSnapshot, Money
from archipel.ledger import Entry, Ledger
from archipel.policy import Policy

SPEC = """\
commitments:
- name: aws-2026
  provider: aws
  amount: 2400
  currency: USD
  period: {start: 2026-01-01, end: 2027-01-01}
budgets:
- {name: research-monthly, tenant: research, amount: 150, currency: USD}
"""


@pytest.fixture
def served(
    tmp_path: Path, snapshot: CatalogSnapshot, policy: Policy
) -> Iterator[tuple[TestClient, Store]]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url)
    store.migrate()
    ledger = Ledger(url)
    ledger.migrate()
    with ledger.transaction() as connection:
        ledger.add(
            connection,
            [  # 100 USD in each of January to June 2026
                Entry(
                    source="runs",
                    key=f"train/{month}",
                    start=datetime(2026, month, 3, tzinfo=UTC),
                    end=datetime(2026, month, 4, tzinfo=UTC),
                    tenant="research",
                    cost=Money(Decimal(100), "USD"),
                    provider="aws",
                    region="us-east-1",
                    gpu_hours=Decimal(25),
                )
                for month in range(1, 7)
            ],
        )
    ledger.close()
    spec = tmp_path / "finops.yaml"
    spec.write_text(SPEC)
    reconciler = Reconciler(store, {}, SitePlacer([], snapshot, policy), tmp_path / "ckpt")
    app = create_app(store, reconciler)
    mount_finops(app, spec, url)
    yield TestClient(app), store
    store.close()


def auth(store: Store, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {store.create_token('default', role)}"}


@pytest.mark.parametrize(
    "path",
    ["/v1/ledger/commitments", "/v1/ledger/budgets", "/v1/ledger/alerts", "/v1/ledger/metrics"],
)
def test_only_admins_read_the_ledger(served: tuple[TestClient, Store], path: str) -> None:
    client, store = served
    assert client.get(path).status_code == 401
    refused = client.get(path, headers=auth(store, "viewer"))
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]
    assert client.get(path, headers=auth(store, "admin")).status_code == 200


def test_commitments_budgets_and_alerts(served: tuple[TestClient, Store]) -> None:
    client, store = served
    admin = auth(store, "admin")
    doc = client.get("/v1/ledger/commitments?today=2026-07-01", headers=admin).json()
    (c,) = doc["commitments"]
    # 600 spent, and 100 a month for the 6 months to come: 1,200 of 2,400
    assert (c["spent"], c["burned"], c["at_end"]["mean"]) == ("600", "0.2500", "1200")
    alerts = client.get("/v1/ledger/alerts?today=2026-07-01", headers=admin).json()["alerts"]
    assert [(a["kind"], a["subject"]) for a in alerts] == [("shortfall", "aws-2026")]
    budgets = client.get("/v1/ledger/budgets?today=2026-06-11", headers=admin).json()["budgets"]
    # 100 in the 10 days of June so far: 300 by the month's end at that rate
    assert (budgets[0]["spent"], budgets[0]["forecast"]) == ("100", "300")
    bad = client.get("/v1/ledger/alerts?today=someday", headers=admin)
    assert bad.status_code == 422


def test_metrics_are_prometheus_text(served: tuple[TestClient, Store]) -> None:
    client, store = served
    answer = client.get("/v1/ledger/metrics?today=2026-07-01", headers=auth(store, "admin"))
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'archipel_commitment_burned_ratio{commitment="aws-2026",provider="aws"} 0.25' in text
    for bound in ("mean", "low", "high"):
        assert (
            f'archipel_commitment_forecast_ratio{{bound="{bound}",commitment="aws-2026",'
            f'provider="aws"}} 0.5' in text
        )
    assert 'archipel_ledger_alerts{kind="shortfall"} 1.0' in text
    assert 'archipel_ledger_alerts{kind="budget"} 0.0' in text
