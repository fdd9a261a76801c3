"""The reconciler places a run exactly where the placement engine ranks first.

For generated sites (providers, countries, accelerators, prices, slots), their
state (down, full, blocked for the run after failures) and a run, the site the
reconciler launches the run on is the engine's first choice among the sites
that can take it now; with none, the run waits when a site that fits is only
down or full, and fails when none fits at all. The simulator relies on this.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archipel.backends import FakeBackend, LaunchRequest
from archipel.catalog import load_snapshot
from archipel.controlplane import NewAttempt, Reconciler, Site, SitePlacer, SiteSpec, Store
from archipel.core import CatalogSnapshot, InputError, RunState, parse_workload
from archipel.placement import PlacementRequest, Planner
from archipel.policy import Policy, default_policy

WHERE = [
    ("scaleway", "fr-par", "FR"),
    ("ionos", "de/fra", "DE"),
    ("aws", "us-east-1", "US"),
    ("ovhcloud", "GRA11", "FR"),
    ("stackit", "eu01", "DE"),
]


@functools.cache
def _catalog() -> tuple[CatalogSnapshot, Policy]:
    return load_snapshot(), default_policy()


@dataclass(frozen=True)
class Scenario:
    sites: list[SiteSpec]
    healthy: dict[str, bool]
    taken: dict[str, int]  # slots held by other runs (on healthy sites)
    blocked: tuple[str, ...]  # sites this run failed on before
    data_class: str
    accelerators: str


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    sites = []
    for i in range(draw(st.integers(1, 5))):
        provider, region, country = draw(st.sampled_from(WHERE))
        sites.append(
            SiteSpec(
                name=f"site{i}",
                backend="local",
                provider=provider,
                region=region,
                country=country,
                accelerators=draw(st.sampled_from(["cpu:1", "H100:1"])),
                slots=draw(st.integers(1, 2)),
                price_per_hour=Decimal(draw(st.integers(0, 3))) / 2,  # ties happen
            )
        )
    healthy = {s.name: draw(st.booleans()) for s in sites}
    taken = {s.name: draw(st.integers(0, s.slots)) if healthy[s.name] else 0 for s in sites}
    blocked = tuple(sorted(draw(st.sets(st.sampled_from([s.name for s in sites])))))
    data_class = draw(st.sampled_from(["public", "internal", "personal", "health", "sovereign"]))
    return Scenario(
        sites, healthy, taken, blocked, data_class, draw(st.sampled_from(["cpu:1", "H100:1"]))
    )


def _workload(name: str, accelerators: str, data_class: str) -> object:
    return parse_workload(
        {
            "name": name,
            "kind": "training",
            "resources": {"accelerators": accelerators},
            "data": {"class": data_class},
            "run": {"command": ["python", "train.py"]},
        }
    )


def _engine_ranking(scenario: Scenario, snapshot: CatalogSnapshot, policy: Policy) -> list[str]:
    """Every site that fits the run, best first, as the engine ranks them (no site state)."""
    placer = SitePlacer(scenario.sites, snapshot, policy)
    planner = Planner(placer.planner.snapshot, policy)
    workload = _workload("train", scenario.accelerators, scenario.data_class)
    try:
        plan = planner.plan(PlacementRequest.from_workload(workload), top=len(scenario.sites))  # type: ignore[arg-type]
    except InputError:  # no site has the accelerator at all
        return []
    return [p.offer.instance_type for p in plan.placements]


def _occupy(store: Store, fakes: dict[str, FakeBackend], scenario: Scenario) -> None:
    """Other runs hold ``taken`` slots of each site, launched and running there."""
    filler = _workload("filler", "cpu:1", "public")
    for site, count in scenario.taken.items():
        for _ in range(count):
            run = store.submit("other", filler)  # type: ignore[arg-type]
            placing = store.transition(run, RunState.PLACING)
            assert placing is not None
            attempt = NewAttempt(f"{run.id}-a1", 1, site)
            assert store.transition(placing, RunState.LAUNCHING, "placed", attempt=attempt)
            fakes[site].launch(LaunchRequest(attempt.id, ["python", "serve.py"]))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_the_reconciler_launches_a_run_on_the_engines_first_choice(scenario: Scenario) -> None:
    snapshot, policy = _catalog()
    ranking = _engine_ranking(scenario, snapshot, policy)
    slots = {s.name: s.slots for s in scenario.sites}
    open_now = [
        n
        for n in ranking
        if n not in scenario.blocked and scenario.healthy[n] and scenario.taken[n] < slots[n]
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'state.db'}")
        store.migrate()
        try:
            fakes = {s.name: FakeBackend(s.name) for s in scenario.sites}
            _occupy(store, fakes, scenario)
            for name, healthy in scenario.healthy.items():
                fakes[name].set_health(healthy, None if healthy else "maintenance")
            run = store.submit(
                "acme", _workload("train", scenario.accelerators, scenario.data_class)
            )  # type: ignore[arg-type]
            placing = store.transition(run, RunState.PLACING, blocked_sites=scenario.blocked)
            assert placing is not None
            sites = {s.name: Site(s, fakes[s.name]) for s in scenario.sites}
            placer = SitePlacer(scenario.sites, snapshot, policy)
            Reconciler(store, sites, placer, Path(folder) / "ckpt").step()
            after = store.get(run.id)
        finally:
            store.close()
    assert after is not None
    # every fitting site blocked: the run starts over with none blocked
    unblocked = [n for n in ranking if scenario.healthy[n] and scenario.taken[n] < slots[n]]
    if open_now:
        assert (after.state, after.site) == (RunState.LAUNCHING, open_now[0])
    elif any(n not in scenario.blocked for n in ranking):  # fits, but down or full now
        assert after.state is RunState.PENDING
        assert (after.message or "").startswith("waiting for a site: ")
    elif unblocked:
        assert (after.state, after.site) == (RunState.LAUNCHING, unblocked[0])
        assert after.blocked_sites == ()
    elif ranking:  # blocked everywhere, and down or full everywhere: waits, nothing blocked
        assert after.state is RunState.PENDING and after.blocked_sites == ()
    else:
        assert after.state is RunState.FAILED
