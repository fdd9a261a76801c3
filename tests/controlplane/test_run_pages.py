"""A tenant's runs read one page at a time (the console's list): the page is exactly the
slice a brute-force filter and sort of every run gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from tests.profiles import examples

from archipel.controlplane import Store
from archipel.controlplane._models import EventRow, RunRow
from archipel.core import RunState

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
    order=st.sampled_from(["newest", "oldest", "updated", "name", "state"]),
    offset=st.integers(0, 35),
    limit=st.integers(1, 12),
)
def test_a_page_is_the_slice_of_every_matching_run_in_order(
    store: Store,
    rows: list[dict[str, Any]],
    states: list[RunState],
    sites: list[str],
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
    ]
    expected = [r["id"] for r in _oracle(matching, order)][offset : offset + limit]
    page, total = store.runs_page(
        "acme", states=states, sites=sites, order=order, offset=offset, limit=limit
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
