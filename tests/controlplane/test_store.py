"""The store: migrations match the models; tokens are hashed; history only grows."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from archipel.controlplane import NewAttempt, Store
from archipel.controlplane._models import Base, TokenRow
from archipel.core import InputError, RunState, TransitionError, parse_workload


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


def _running_service(store: Store, tenant: str, publish_to: list[str]) -> str:
    workload = parse_workload(
        {
            "name": "svc",
            "kind": "inference",
            "resources": {"accelerators": "cpu:1"},
            "run": {"command": ["serve"]},
            "serve": {"model": "m", "publish_to": publish_to},
        }
    )
    run = store.submit(tenant, workload)
    for target, extra in [
        (RunState.PLACING, {}),
        (RunState.LAUNCHING, {"attempt": NewAttempt(f"{run.id}-a1", 1, "paris"), "port": 4000}),
        (RunState.RUNNING, {}),
    ]:
        moved = store.transition(run, target, **extra)
        assert moved is not None
        run = moved
    return run.id


@pytest.mark.parametrize(
    ("tenant", "decoy"),
    [
        pytest.param("globex", "glob%", id="plain"),
        pytest.param("zürich-bank", "zurich-bank", id="non-ASCII"),
        pytest.param('we "quote"', "we quote", id="quotes"),
        pytest.param("a_b", "axb", id="a LIKE wildcard in the name"),
    ],
)
def test_a_tenant_sees_its_services_and_those_published_to_it_by_name(
    store: Store, tenant: str, decoy: str
) -> None:
    own = _running_service(store, tenant, [])
    shared = _running_service(store, "acme", [tenant])
    _running_service(store, "acme", [decoy])  # names like it, but not it
    _running_service(store, "acme", [])
    assert sorted(run.id for run, _ in store.services(tenant)) == sorted([own, shared])
    assert len(store.services()) == 4


@pytest.mark.parametrize(
    "tenant",
    ["", " ", "acme corp", "-acme", "a/b", "a\x00", "x" * 101],
    ids=["empty", "blank", "space", "leading dash", "slash", "NUL", "too long"],
)
def test_a_token_is_never_made_for_a_tenant_name_that_is_no_slug(store: Store, tenant: str) -> None:
    with pytest.raises(InputError, match="is not a tenant name"):
        store.create_token(tenant, "viewer")


@pytest.mark.parametrize("tenant", ["acme", "default", "Team_7", "eu.acme-1", "x" * 100])
def test_slug_tenant_names_get_tokens(store: Store, tenant: str) -> None:
    principal = store.authenticate(store.create_token(tenant, "viewer"))
    assert principal is not None and principal.tenant == tenant


def test_a_revocation_elsewhere_is_refused_at_once_by_a_server_without_a_token_cache(
    store: Store,
) -> None:
    store.token_cache_seconds = 0  # archipel server --token-cache 0
    token = store.create_token("acme", "submitter")
    principal = store.authenticate(token)
    assert principal is not None
    elsewhere = Store(store.url)  # `archipel token revoke` is another process
    assert elsewhere.revoke_token(principal.token_id)
    elsewhere.close()
    assert store.authenticate(token) is None
