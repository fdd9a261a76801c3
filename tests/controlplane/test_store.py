"""The store: migrations match the models; tokens are hashed; history only grows."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from archipel.controlplane import Store
from archipel.controlplane._models import Base, TokenRow
from archipel.core import RunState, TransitionError, parse_workload


def test_migrations_create_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(store: Store) -> None:
    store.migrate()
    store.migrate()


def test_tokens_are_stored_hashed_and_revocable(store: Store) -> None:
    token = store.create_token("acme", "submitter")
    principal = store.authenticate(token)
    assert principal is not None and (principal.tenant, principal.role) == ("acme", "submitter")
    with store.session() as s:
        row = s.scalars(select(TokenRow)).one()
        assert token.split("_", 2)[2] not in row.secret_sha256
    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-token") is None
    assert store.revoke_token(principal.token_id)
    assert store.authenticate(token) is None


def test_only_table_transitions_are_allowed(store: Store) -> None:
    run = store.submit(
        "acme",
        parse_workload({"name": "x", "kind": "batch", "resources": {"accelerators": "cpu:1"}}),
    )
    with pytest.raises(TransitionError, match="pending to running"):
        store.transition(run, RunState.RUNNING)
    assert [e.to_state for e in store.events(run.id)] == ["pending"]


def test_a_tenant_lists_only_its_runs(store: Store) -> None:
    w = parse_workload({"name": "x", "kind": "batch", "resources": {"accelerators": "cpu:1"}})
    store.submit("acme", w)
    store.submit("globex", w)
    assert {r.tenant for r in store.runs(tenant="acme")} == {"acme"}
    assert len(store.runs()) == 2
