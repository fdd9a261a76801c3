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
    """Every start migrates: a second migration keeps the schema, the revision and the data."""
    run = store.submit(
        "acme",
        parse_workload({"name": "x", "kind": "batch", "resources": {"accelerators": "cpu:1"}}),
    )
    token = store.create_token("acme", "submitter")
    with store.engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_heads()
    store.migrate()
    store.migrate()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_heads() == before and len(before) == 1
        assert compare_metadata(context, Base.metadata) == []
    kept = store.get(run.id)
    assert kept is not None and kept.state is RunState.PENDING
    assert [e.to_state for e in store.events(run.id)] == ["pending"]
    assert store.authenticate(token) is not None


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


def test_a_group_is_recorded_as_one_run_per_replica_named_in_order(store: Store) -> None:
    w = parse_workload(
        {"name": "svc", "kind": "inference", "resources": {"accelerators": "cpu:1"}, "replicas": 3}
    )
    runs = store.submit_group("acme", w)
    assert [r.name for r in runs] == ["svc-1", "svc-2", "svc-3"]
    assert len({r.group_id for r in runs}) == 1 and runs[0].group_id is not None
    listed = store.runs(group=runs[0].group_id)
    assert [r.id for r in listed] == [r.id for r in runs]
    assert all(r.workload.replicas == 3 for r in listed)  # each keeps the submitted workload
    assert store.submit("acme", w.model_copy(update={"replicas": 1})).group_id is None
