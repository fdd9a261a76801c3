"""I/O-free decisions: replica choice, circuit breaker, retry budget.

The central invariant, checked by property tests: whatever the health of the
replicas and whatever fails, every replica ``pick`` returns for a data class
is one the policy allows for that class. What it allows is the hand-written
table ``ALLOWED_PLACES``, not the policy engine the route table is built with.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archipel.core import CatalogSnapshot
from archipel.gateway import (
    TRANSITIONS,
    Breaker,
    BreakerEvent,
    BreakerState,
    Refusal,
    RetryBudget,
    RouteTable,
    build_route_table,
    hash_key,
    parse_gateway_config,
    pick,
)
from archipel.gateway._failover import ReplicaState, new_states
from archipel.policy import Policy

CLASSES = ["public", "internal", "confidential", "personal", "health", "sovereign"]
PLACES = [
    ("ovhcloud", "gra", "FR"),
    ("scaleway", "fr-par", "FR"),
    ("aws", "eu-west-3", "FR"),
    ("aws", "us-east-1", "US"),
    ("nebius", "eu-north1", "FI"),
    ("vast", "any", None),
    ("lambda", "us-west-1", "US"),
]

# Which places the default policy allows for each tenant data class, worked out by
# hand from the class rules in docs/policy.md ("The default policy") and the
# provider facts of tests/facts.py (PROVIDER_FACTS: marketplace, CLOUD Act
# exposure, SecNumCloud, ISO 27001), not from the policy engine:
#
#   place                     vetted  ISO 27001  CLOUD Act  SecNumCloud  EU/EEA or adequacy
#   0 ovhcloud   FR           yes     yes        no         qualified    EEA
#   1 scaleway   FR           yes     yes        no         in progress  EEA
#   2 aws        FR           yes     yes        yes        none         EEA
#   3 aws        US           yes     yes        yes        none         neither (US is partial)
#   4 nebius     FI           yes     unknown    unclear    none         EEA
#   5 vast       unknown      no      unknown    yes        none         unknown country: no
#   6 lambda     US           yes     unknown    yes        none         neither
ALLOWED_PLACES = {
    "public": {0, 1, 2, 3, 4, 5, 6},  # any provider, any country
    "internal": {0, 1, 2, 3, 4, 6},  # vetted: not Vast, a marketplace
    "confidential": {0, 1, 2, 3},  # internal, and ISO 27001 (unknown is no)
    "personal": {0, 1, 2, 4},  # internal, and in the EEA or a full-adequacy country
    "health": {0, 1},  # in the EEA, and no CLOUD Act exposure (unclear is not no)
    "sovereign": {0},  # in the EEA, and SecNumCloud qualified
}


def table_for(
    snapshot: CatalogSnapshot, policy: Policy, sites: list[tuple[int, str, int, int]]
) -> RouteTable:
    """``sites``: (place index, pool, max concurrency, weight) per replica."""
    replicas = [
        {
            "name": f"r{i}",
            "provider": PLACES[p][0],
            "region": PLACES[p][1],
            "country": PLACES[p][2],
            "base_url": "http://127.0.0.1:1/v1",
            "pool": pool,
            "max_concurrency": conc,
            "weight": weight,
        }
        for i, (p, pool, conc, weight) in enumerate(sites)
    ]
    config = parse_gateway_config(
        {
            "tenants": {c: {"key_sha256": [hash_key(c)], "data_class": c} for c in CLASSES},
            "models": {"m": {"replicas": replicas}},
        }
    )
    return build_route_table(config, policy, snapshot)


# -- the circuit breaker ------------------------------------------------------


def test_breaker_walks_the_transition_table() -> None:
    b = Breaker(threshold=2, cooldown=10)
    b.on_failure(0)
    assert b.state is BreakerState.CLOSED
    b.on_failure(1)
    assert b.state is BreakerState.OPEN and not b.admits(5)
    assert b.admits(11) and b.state is BreakerState.HALF_OPEN
    b.on_attempt()
    assert not b.admits(11)  # one probe at a time
    b.on_failure(12)
    assert b.state is BreakerState.OPEN and not b.admits(13)
    assert b.admits(22)
    b.on_attempt()
    b.on_success(23)
    assert b.state is BreakerState.CLOSED and b.admits(23)
    events = [t.event for t in b.history]
    assert events == [
        BreakerEvent.TRIPPED,
        BreakerEvent.COOLDOWN_ELAPSED,
        BreakerEvent.PROBE_FAILED,
        BreakerEvent.COOLDOWN_ELAPSED,
        BreakerEvent.PROBE_SUCCEEDED,
    ]
    assert all(TRANSITIONS[(t.before, t.event)] is t.after for t in b.history)


def test_an_abandoned_probe_frees_the_probe_slot() -> None:
    b = Breaker(threshold=1, cooldown=1)
    b.on_failure(0)
    assert b.admits(2)
    b.on_attempt()
    assert not b.admits(2)
    b.on_abandon()
    assert b.admits(2) and b.state is BreakerState.HALF_OPEN


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker(threshold=2, cooldown=10)
    b.on_failure(0)
    b.on_success(1)
    b.on_failure(2)
    assert b.state is BreakerState.CLOSED


@given(st.lists(st.tuples(st.sampled_from(["fail", "ok", "try"]), st.floats(0, 5)), max_size=60))
def test_breaker_only_moves_along_the_table(steps: list[tuple[str, float]]) -> None:
    b = Breaker(threshold=3, cooldown=2)
    now = 0.0
    for action, dt in steps:
        now += dt
        if action == "try":
            if b.admits(now):
                b.on_attempt()
        elif action == "fail":
            b.on_failure(now)
        else:
            b.on_success(now)
    for t in b.history:
        assert TRANSITIONS[(t.before, t.event)] is t.after


# -- the retry budget ---------------------------------------------------------


def test_retry_budget_caps_retries_to_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.25, min_per_second=0, now=0)
    budget.balance = 0
    for _ in range(20):
        budget.on_request()
    assert sum(budget.try_spend(0) for _ in range(100)) == 5
    for _ in range(1000):
        budget.on_request()
    assert sum(budget.try_spend(0) for _ in range(100)) == 10  # the balance is capped


def test_retry_budget_refills_with_time() -> None:
    budget = RetryBudget(ratio=0, min_per_second=2, now=0)
    budget.balance = 0
    assert not budget.try_spend(0)
    assert budget.try_spend(0.5)


# -- picking a replica --------------------------------------------------------


def test_least_loaded_wins_then_another_provider_on_retry(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = table_for(
        snapshot, policy, [(0, "primary", 8, 1), (0, "primary", 8, 1), (1, "primary", 8, 1)]
    )
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 3, 10)
    states[0].outstanding = 2
    states[1].outstanding = 1
    states[2].outstanding = 3
    first = pick(route, states, 0)
    assert not isinstance(first, Refusal) and first.name == "r1"
    second = pick(route, states, 0, [first])
    assert not isinstance(second, Refusal) and second.name == "r2"  # scaleway, not ovh again


def test_spillover_only_when_primary_is_full(snapshot: CatalogSnapshot, policy: Policy) -> None:
    table = table_for(snapshot, policy, [(0, "primary", 1, 1), (1, "secondary", 1, 1)])
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 3, 10)
    assert pick(route, states, 0) == table.replicas[0]
    states[0].outstanding = 1
    assert pick(route, states, 0) == table.replicas[1]
    states[1].outstanding = 1
    assert pick(route, states, 0) is Refusal.FULL


def test_open_circuits_make_the_model_unavailable(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = table_for(snapshot, policy, [(0, "primary", 4, 1)])
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 1, 10)
    states[0].breaker.on_failure(0)
    assert pick(route, states, 1) is Refusal.UNAVAILABLE
    assert pick(route, states, 11) == table.replicas[0]  # the half-open probe


def test_weight_and_latency_shape_the_score(snapshot: CatalogSnapshot, policy: Policy) -> None:
    table = table_for(snapshot, policy, [(0, "primary", 8, 1), (1, "primary", 8, 4)])
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 3, 10)
    states[0].observe(0.1, 0, 10)
    states[1].observe(0.2, 0, 10)
    assert pick(route, states, 0) == table.replicas[1]  # twice as slow, four times the weight
    states[1].observe(2.0, 1, 0.001)  # a very short time constant: the new sample dominates
    assert pick(route, states, 1) == table.replicas[0]


# -- the invariant ------------------------------------------------------------

site_lists = st.lists(
    st.tuples(
        st.integers(0, len(PLACES) - 1),
        st.sampled_from(["primary", "secondary"]),
        st.integers(1, 3),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=8,
)
events = st.lists(
    st.tuples(
        st.sampled_from(CLASSES),
        st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=4),
        st.floats(0, 20),
    ),
    max_size=30,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sites=site_lists, traffic=events)
def test_every_pick_is_allowed_for_its_class_even_through_failures(
    snapshot: CatalogSnapshot, policy: Policy, sites: Any, traffic: Any
) -> None:
    """Requests of all classes share replica health; each attempt fails or succeeds."""
    table = table_for(snapshot, policy, sites)
    states: list[ReplicaState] = new_states(table.replicas, 2, 5)
    allowed = {
        c: {i for i, site in enumerate(sites) if site[0] in ALLOWED_PLACES[c]} for c in CLASSES
    }
    now = 0.0
    for data_class, outcomes, dt in traffic:
        now += dt
        route = table.by_data_class[data_class]["m"]
        tried: list[Any] = []
        for outcome in outcomes:
            choice = pick(route, states, now, tried)
            if isinstance(choice, Refusal):
                break
            assert choice.index in allowed[data_class]
            assert choice not in tried
            untried_providers = {r.provider for r in route.replicas if r not in tried} - {
                r.provider for r in tried
            }
            if tried and choice.provider in {r.provider for r in tried}:
                # a provider is repeated only when no admitted replica of another one remains
                assert all(
                    states[r.index].outstanding >= r.max_concurrency
                    or not states[r.index].breaker.admits(now)
                    for r in route.replicas
                    if r.provider in untried_providers
                )
            tried.append(choice)
            states[choice.index].breaker.on_attempt()
            if outcome == "ok":
                states[choice.index].breaker.on_success(now)
                break
            states[choice.index].breaker.on_failure(now)


@pytest.mark.parametrize("data_class", CLASSES)
def test_each_class_routes_to_exactly_the_places_its_rules_allow(
    snapshot: CatalogSnapshot, policy: Policy, data_class: str
) -> None:
    """One replica per place: the route of a class is the hand-written table's row."""
    table = table_for(snapshot, policy, [(p, "primary", 1, 1) for p in range(len(PLACES))])
    route = table.by_data_class[data_class]["m"]
    assert {r.index for r in route.replicas} == ALLOWED_PLACES[data_class]


@pytest.mark.parametrize(
    ("data_class", "reachable"),
    [
        pytest.param("public", {"r0", "r1"}, id="public"),
        pytest.param("internal", {"r1"}, id="internal: no marketplace"),
        pytest.param("personal", set(), id="personal: no US site"),
        pytest.param("health", set(), id="health"),
    ],
)
def test_what_a_class_can_reach_among_us_and_marketplace_sites(
    snapshot: CatalogSnapshot, policy: Policy, data_class: str, reachable: set[str]
) -> None:
    """Fail every replica in turn: the picks are exactly the allowed ones, then nothing."""
    table = table_for(snapshot, policy, [(5, "primary", 4, 1), (6, "secondary", 4, 1)])
    route = table.by_data_class[data_class]["m"]
    states = new_states(table.replicas, 1, 60)
    seen: set[str] = set()
    while not isinstance(choice := pick(route, states, 0), Refusal):
        seen.add(choice.name)
        states[choice.index].breaker.on_failure(0)
    assert seen == reachable
    assert choice is Refusal.UNAVAILABLE


# -- active health checks -----------------------------------------------------


@pytest.mark.parametrize(
    ("new", "checks", "unhealthy_after", "healthy_after", "verdicts"),
    [
        pytest.param(False, "ff", 2, 1, "ud", id="two failures take it out"),
        pytest.param(False, "fof", 2, 1, "uuu", id="a pass in between resets the count"),
        pytest.param(False, "ffo", 2, 1, "udu", id="one pass brings it back"),
        pytest.param(False, "ffoo", 2, 2, "uddu", id="two passes needed to come back"),
        pytest.param(False, "ffofoo", 2, 2, "uddddu", id="a failure in between resets"),
        pytest.param(False, "f", 1, 1, "d", id="threshold one"),
        pytest.param(True, "o", 2, 2, "u", id="new: its first pass lets it in at once"),
        pytest.param(True, "f", 2, 1, "d", id="new: its first failure keeps it out"),
        pytest.param(True, "foo", 2, 2, "ddu", id="new: then it comes back like any other"),
        pytest.param(True, "off", 2, 1, "uud", id="new: once in, it goes out like any other"),
    ],
)
def test_active_checks_take_a_replica_out_and_bring_it_back(
    new: bool, checks: str, unhealthy_after: int, healthy_after: int, verdicts: str
) -> None:
    """``f``/``o``: a failed/passed check; ``u``/``d``: the verdict after it (up/down).
    A ``new`` replica is pending: out of rotation, with no check yet."""
    state = ReplicaState(Breaker(3, 10), pending=new)
    assert state.down is new
    seen = ""
    for c in checks:
        state.checked(c == "o", unhealthy_after, healthy_after)
        seen += "d" if state.down else "u"
    assert seen == verdicts


def test_pick_skips_replicas_that_fail_their_checks(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    table = table_for(snapshot, policy, [(0, "primary", 8, 1), (1, "secondary", 8, 1)])
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 3, 10)
    states[0].down = True
    assert pick(route, states, 0) == table.replicas[1]  # spills over rather than use it


def test_when_every_replica_fails_its_checks_the_circuits_decide(
    snapshot: CatalogSnapshot, policy: Policy
) -> None:
    """A wrong check (a server without the health path) must not take the model down."""
    table = table_for(snapshot, policy, [(0, "primary", 8, 1), (1, "primary", 8, 1)])
    route = table.by_data_class["public"]["m"]
    states = new_states(table.replicas, 1, 10)
    states[0].down = states[1].down = True
    states[1].ewma = 0.5
    assert pick(route, states, 0) == table.replicas[0]
    states[0].breaker.on_failure(0)  # open
    assert pick(route, states, 0) == table.replicas[1]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sites=site_lists,
    data_class=st.sampled_from(CLASSES),
    flags=st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=8, max_size=8),
    tried_mask=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_a_replica_failing_checks_is_picked_only_when_no_healthy_one_is_admitted(
    snapshot: CatalogSnapshot,
    policy: Policy,
    sites: Any,
    data_class: str,
    flags: list[tuple[bool, bool, bool]],
    tried_mask: list[bool],
) -> None:
    """(down, full, open) per replica; the pick stays in the class whatever they are."""
    table = table_for(snapshot, policy, sites)
    states = new_states(table.replicas, 1, 100)
    for r, (down, full, open_) in zip(table.replicas, flags, strict=False):
        states[r.index].down = down
        states[r.index].outstanding = r.max_concurrency if full else 0
        if open_:
            states[r.index].breaker.on_failure(0)
    route = table.by_data_class[data_class]["m"]
    tried = [r for r in route.replicas if tried_mask[r.index]]
    choice = pick(route, states, 1, tried)

    def admitted(r: Any) -> bool:
        st_ = states[r.index]
        return r not in tried and st_.outstanding < r.max_concurrency and st_.breaker.admits(1)

    if isinstance(choice, Refusal):
        assert not any(admitted(r) for r in route.replicas)
        return
    assert choice in route.replicas  # never outside the class
    assert admitted(choice)
    if states[choice.index].down:
        assert not any(admitted(r) and not states[r.index].down for r in route.replicas)
