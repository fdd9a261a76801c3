"""A tenant's runs read one page at a time (the console's list): the page is exactly the
slice a brute-force filter and sort of every run gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from tests.profiles import examples

from archipel.controlplane import Store
from archipel.controlplane._models import EventRow, RunRow
from archipel.core import RunState, parse_workload

T0 = datetime(2026, 1, 1)
STATES = [s.value for s in RunState]
SITES = ["paris", "frankfurt", None]

run_rows = st.lists(
    st.fixed_dictionaries(
        {
            "tenant": st.sampled_from(["acme", "globex"]),
            "name": st.text("abcde", min_size=1, max_size=3),
            "state": st.sampled_from(STATES),
            "site": st.sampled_from(SITES),
            "minute": st.integers(0, 30),  # equal times happen: ties are broken by id
            "changed": st.integers(0, 30),
            "data_class": st.sampled_from(["personal", "public", "health"]),
        }
    ),
    max_size=30,
)


def _insert(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    full = [
        {
            "id": f"r-{uuid.uuid4().hex[:12]}",
            "tenant": r["tenant"],
            "name": r["name"],
            "spec": "{}",
            "state": r["state"],
            "version": 1,
            "restarts": 0,
            "max_restarts": 0,
            "blocked_sites": "[]",
            "site": r["site"],
            "data_class": r.get("data_class"),
            "created_at": T0 + timedelta(minutes=r["minute"]),
            "updated_at": T0 + timedelta(minutes=r["changed"]),
        }
        for r in rows
    ]
    with store.engine.begin() as c:
        c.execute(delete(EventRow))
        c.execute(delete(RunRow))
        if full:
            c.execute(insert(RunRow), full)
    return full


def _oracle(rows: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """Every run sorted as the order says, by Python's sort (stable: the last key first)."""
    out = sorted(rows, key=lambda r: r["id"])  # the tie-breaker, ascending
    if order == "newest":
        return sorted(out, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    if order == "oldest":
        return sorted(out, key=lambda r: (r["created_at"], r["id"]))
    if order == "updated":
        return sorted(out, key=lambda r: (r["updated_at"], r["id"]), reverse=True)
    if order == "name":
        return sorted(out, key=lambda r: (r["name"], r["id"]))
    newest = sorted(out, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return sorted(newest, key=lambda r: r["state"])  # state, then newest first


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=run_rows,
    states=st.lists(st.sampled_from(list(RunState)), max_size=3, unique=True),
    sites=st.lists(st.sampled_from(["paris", "frankfurt"]), max_size=2, unique=True),
    classes=st.lists(st.sampled_from(["personal", "public"]), max_size=2, unique=True),
    order=st.sampled_from(["newest", "oldest", "updated", "name", "state"]),
    offset=st.integers(0, 35),
    limit=st.integers(1, 12),
)
def test_a_page_is_the_slice_of_every_matching_run_in_order(
    store: Store,
    rows: list[dict[str, Any]],
    states: list[RunState],
    sites: list[str],
    classes: list[str],
    order: str,
    offset: int,
    limit: int,
) -> None:
    full = _insert(store, rows)
    matching = [
        r
        for r in full
        if r["tenant"] == "acme"
        and (not states or r["state"] in {s.value for s in states})
        and (not sites or r["site"] in sites)
        and (not classes or r["data_class"] in classes)
    ]
    expected = [r["id"] for r in _oracle(matching, order)][offset : offset + limit]
    page, total = store.runs_page(
        "acme",
        states=states,
        sites=sites,
        data_classes=classes,
        order=order,
        offset=offset,
        limit=limit,
    )
    assert [r.id for r in page] == expected
    assert total == len(matching)


def test_busy_counts_every_tenants_launching_and_running_runs_per_site(store: Store) -> None:
    rows = [
        {"tenant": "acme", "name": "a", "state": "running", "site": "paris"},
        {"tenant": "globex", "name": "b", "state": "launching", "site": "paris"},
        {"tenant": "acme", "name": "c", "state": "succeeded", "site": "paris"},
        {"tenant": "acme", "name": "d", "state": "running", "site": "frankfurt"},
        {"tenant": "acme", "name": "e", "state": "pending", "site": None},
        {"tenant": "acme", "name": "f", "state": "recovering", "site": "frankfurt"},
    ]
    _insert(store, [{**r, "minute": 0, "changed": 0} for r in rows])
    assert store.busy() == {"paris": 2, "frankfurt": 1}


def test_a_token_is_found_by_its_id_until_it_is_revoked(store: Store) -> None:
    store.token_cache_seconds = 0
    token_id = store.create_token("acme", "viewer").split("_")[1]
    found = store.token_principal(token_id)
    assert found is not None and (found.tenant, found.role, found.token_id) == (
        "acme",
        "viewer",
        token_id,
    )
    assert store.token_principal("0123456789abcdef") is None
    store.revoke_token(token_id)
    assert store.token_principal(token_id) is None


@pytest.mark.parametrize("order", ["newest", "oldest", "updated", "name", "state"])
def test_every_order_the_console_offers_exists(store: Store, order: str) -> None:
    assert store.runs_page("acme", order=order) == ([], 0)


def test_a_runs_data_class_is_kept_and_listed_per_tenant(store: Store) -> None:
    for tenant, name, cls in [
        ("acme", "a", "health"),
        ("acme", "b", "Public"),
        ("globex", "c", "sovereign"),
    ]:
        doc = {"name": name, "kind": "batch", "resources": {"accelerators": "cpu:1"}}
        store.submit(tenant, parse_workload({**doc, "data": {"class": cls}}, "test"))
    store.submit("acme", parse_workload({**doc, "name": "d"}, "test"))  # the default class
    assert store.data_classes("acme") == ["Public", "health", "internal"]
    page, total = store.runs_page("acme", data_classes=["health", "internal"], order="name")
    assert [r.name for r in page] == ["a", "d"] and total == 2


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no schema yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


def test_the_migration_gives_earlier_runs_the_data_class_of_their_spec(
    empty_database: str,
) -> None:
    """Runs stored before the column existed get it from their spec's ``data.class``."""
    from alembic import command
    from alembic.config import Config

    store = Store(empty_database)
    try:
        config = Config()
        config.set_main_option(
            "script_location", str(files("archipel.controlplane") / "migrations")
        )
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
        spec = parse_workload(
            {
                "name": "old",
                "kind": "batch",
                "resources": {"accelerators": "cpu:1"},
                "data": {"class": "health"},
            },
            "test",
        ).model_dump_json(by_alias=True)
        with store.engine.begin() as c:  # a run as revision 0006 stored it: no data_class
            c.execute(
                sa.text(
                    "INSERT INTO runs (id, tenant, name, spec, state, version, restarts, "
                    "max_restarts, blocked_sites, created_at, updated_at) VALUES ('r-old', "
                    "'acme', 'old', :spec, 'pending', 1, 0, 0, '[]', :at, :at)"
                ),
                {"spec": spec, "at": T0},
            )
        store.migrate()
        assert store.data_classes("acme") == ["health"]
    finally:
        store.close()
