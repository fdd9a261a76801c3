"""Study 2's serving model: replicas on spot across zones with on-demand fallback.

Each expected figure is worked out by hand from synthetic availability ticks of 100 s."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archipel.catalog import load_snapshot
from archipel.core import InputError
from archipel.policy import default_policy
from archipel.sim import SpotTrace
from archipel.sim._serve import (
    LlmRequest,
    ServeOutcome,
    ServeSpec,
    ZoneSite,
    load_llm_trace,
    placer_for,
    simulate_serving,
)

GAP = 100
SPEC = ServeSpec(
    replicas=2, spare=0, per_zone=2, slots=1, cold_start=50, prefill_tps=1000,
    decode_tps=10, slo_wait=5, spot_price=Decimal("1"), on_demand_price=Decimal("3"),
)  # fmt: skip
QUIET = [LlmRequest(900.0, 0, 10)]  # one request of 1 s, when every policy is ready


SNAPSHOT, POLICY = load_snapshot(), default_policy()


def zone(name: str, *ticks: int) -> SpotTrace:
    return SpotTrace.of(name, GAP, list(ticks))


def serve(
    zones: list[SpotTrace],
    requests: list[LlmRequest],
    spec: ServeSpec,
    policy: str,
    loop: bool = True,
    data_class: str = "internal",
    memo: bool = True,
    sites: list[ZoneSite] | None = None,
) -> ServeOutcome:
    """One policy, its replicas placed by the engine on the shipped catalog and policy."""
    placer = placer_for(
        zones, spec, SNAPSHOT, POLICY, data_class=data_class, memo=memo, sites=sites
    )
    return simulate_serving(zones, requests, spec, policy, loop=loop, placer=placer)


def test_on_demand_holds_its_replicas_all_along() -> None:
    """2 replicas for 1,000 s at 3 an hour; ready from 50 s: available 95% of the time."""
    out = serve([zone("a", *[0] * 10)], QUIET, SPEC, "on-demand", loop=False)
    assert out.on_demand_hours == Decimal("0.56")  # 2 x 1000 s = 0.5556 h
    assert out.cost == Decimal("1.67")  # 2000 s x 3 / 3600
    assert (out.available, out.up) == (pytest.approx(0.95), pytest.approx(0.95))
    assert (out.requests, out.p50, out.slo_missed) == (1, pytest.approx(1.0), 0)
    # after each tick: time, ready, spot, on demand, cost so far (2 x 500 s at 3 an hour)
    assert out.timeline[5] == (500, 2, 0, 2, pytest.approx(2 * 500 * 3 / 3600))
    assert len(out.timeline) == 10 and out.preempted_at == ()


def test_spot_in_one_zone_is_taken_back_and_relaunched() -> None:
    """Spot at ticks 0-2 and 5-9: two replicas run 0-300 s, are preempted at 300, and
    run again from 500 to 1000 s: 2 x 800 s of spot, ready 50-300 and 550-1000."""
    out = serve([zone("a", 1, 1, 1, 0, 0, 1, 1, 1, 1, 1)], QUIET, SPEC, "spot", loop=False)
    assert out.spot_hours == Decimal("0.44")  # 1600 s
    assert out.cost == Decimal("0.44")
    assert out.preemptions == 2 and out.preempted_at == (300, 300)
    assert out.available == pytest.approx((250 + 450) / 1000)
    assert [ready for _, ready, *_ in out.timeline] == [0, 2, 2, 0, 0, 0, 2, 2, 2, 2]


def test_the_hedge_falls_back_to_on_demand_and_drains_it_when_spot_is_ready() -> None:
    """Zone a never has spot, zone b from 300 s. 0-300: two on-demand replicas. At 300 two
    spot replicas launch in b, ready at 350, when the on-demand ones are drained: 2 x 350
    s on demand, 2 x 700 s of spot; never fewer than two ready after the first 50 s."""
    zones = [zone("a", *[0] * 10), zone("b", 0, 0, 0, *[1] * 7)]
    out = serve(zones, QUIET, SPEC, "spot-hedge", loop=False)
    assert out.on_demand_hours == Decimal("0.19")  # 700 s
    assert out.spot_hours == Decimal("0.39")  # 1400 s
    assert out.cost == Decimal("0.97")  # 700 x 3 / 3600 + 1400 x 1 / 3600 = 0.9722
    assert out.available == pytest.approx(0.95)
    assert out.preemptions == 0


def test_a_preempted_request_starts_over_and_waits_for_a_ready_replica() -> None:
    """One replica, one slot, ready at 50 s. A 50 s request at 100 s is done at 150. A
    200 s request at 120 s waits for it (30 s), runs from 150, is preempted at 300 (no
    spot until 400), starts over on the replica launched at 400 and ready at 450: done
    at 650, latency 530 s."""
    spec = ServeSpec(replicas=1, spare=0, per_zone=1, slots=1, cold_start=50,
                     prefill_tps=1000, decode_tps=1, slo_wait=5)  # fmt: skip
    requests = [LlmRequest(100.0, 0, 50), LlmRequest(120.0, 0, 200)]
    zones = [zone("a", 1, 1, 1, 0, 1, 1, 1, 1, 1, 1)]
    out = serve(zones, requests, spec, "spot", loop=False)
    assert (out.p50, out.p99) == (pytest.approx(50.0), pytest.approx(530.0))
    assert out.slo_missed == 1  # the second waited 30 s


@pytest.mark.parametrize(
    ("zones", "policy", "says"),
    [
        pytest.param([zone("a", 1)], "cheapest", "choose one of", id="policy"),
        pytest.param([], "spot", "at least one zone", id="no zone"),
        pytest.param(
            [zone("a", 1), SpotTrace.of("b", 60, [1])], "spot", "different gaps", id="gaps"
        ),
    ],
)
def test_bad_input_names_what_to_change(zones: list[SpotTrace], policy: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        serve(zones, QUIET, SPEC, policy)


def test_the_llm_trace_is_read_from_its_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    first, second = load_llm_trace(path)
    assert (first.arrival, first.context, first.generated) == (0.0, 374, 44)
    assert second.arrival == pytest.approx(4.314579)
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n")
    with pytest.raises(InputError, match="line 2"):
        load_llm_trace(path)


def test_the_cli_serves_the_example_and_says_it_in_json(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    spot = root / "examples/simulate/spot"
    archipel = str(Path(sys.executable).parent / "archipel")
    shown = subprocess.run(
        [archipel, "simulate", "serve", "--trace", str(spot / "us-west-2a_v100_1.first3d.json"),
         "--requests", str(root / "examples/simulate/serve/AzureLLMInferenceTrace_conv.csv"),
         "--hours", "0.5", "--policy", "spot-hedge", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    [hedge] = doc["policies"]
    assert hedge["policy"] == "spot-hedge" and hedge["saving"] is not None
    assert hedge["requests"] > 9000  # half an hour at 5.5 a second
    bad = subprocess.run([archipel, "simulate", "serve", "--trace", str(tmp_path / "nope.json"),
                          "--requests", str(tmp_path / "nope.csv")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_report_is_one_self_contained_page(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    spot = root / "examples/simulate/spot"
    archipel = str(Path(sys.executable).parent / "archipel")
    page = tmp_path / "serve.html"
    shown = subprocess.run(
        [archipel, "simulate", "serve", "--trace", str(spot / "us-west-2a_v100_1.first3d.json"),
         "--requests", str(root / "examples/simulate/serve/AzureLLMInferenceTrace_conv.csv"),
         "--hours", "1", "--report", str(page)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert html.count("<svg") == 3  # the frontier, the cumulative cost, the timelines
    assert "<script" not in html and "src=" not in html  # nothing fetched, nothing run
    assert all(link.startswith("#") for link in re.findall(r'href="([^"]*)"', html))
    assert html.count("<tr>") == 4  # a header and the three policies


# -- the placement engine in the loop ---------------------------------------------------


def test_the_data_class_keeps_replicas_out_of_zones_its_policy_forbids() -> None:
    """Health data stays in the EU with a provider out of the CLOUD Act's reach: the
    Paris zone (Scaleway) never has spot and the Virginia one (AWS) always has; the hedge
    runs its two replicas on demand in Paris, and none ever goes to Virginia. Internal
    data takes Virginia's spot."""
    zones = [zone("paris", *[0] * 10), zone("virginia", *[1] * 10)]
    sites = [ZoneSite("scaleway", "fr-par", "FR"), ZoneSite("aws", "us-east-1", "US")]
    health = serve(zones, QUIET, SPEC, "spot-hedge", loop=False, data_class="health", sites=sites)
    assert (health.spot_hours, health.on_demand_hours) == (Decimal("0.00"), Decimal("0.56"))
    internal = serve(zones, QUIET, SPEC, "spot-hedge", loop=False, sites=sites)
    assert (internal.spot_hours, internal.on_demand_hours) == (Decimal("0.56"), Decimal("0.00"))


def test_a_data_class_no_zone_may_serve_is_refused_with_the_engines_reason() -> None:
    with pytest.raises(InputError, match=r"health.*site in US.*EU/EEA"):
        serve([zone("us-east-1a_v100", 1)], QUIET, SPEC, "spot", data_class="health")


def test_spot_replicas_go_to_the_emptiest_zone_first() -> None:
    """Four replicas wanted, up to three a zone, spot in both zones until 200 s: two in
    each (the spread rule), not three and one. At 200 s zone b is taken back: its two are
    preempted, zone a takes one more (its third, its limit) and the fourth runs on
    demand. Spot: 2 x 500 + 2 x 200 + 300 s; on demand 300 s; four ready 50-200 and
    250-500 s."""
    spec = ServeSpec(replicas=4, spare=0, per_zone=3, slots=1, cold_start=50,
                     spot_price=Decimal("1"), on_demand_price=Decimal("3"))  # fmt: skip
    zones = [zone("a", 1, 1, 1, 1, 1), zone("b", 1, 1, 0, 0, 0)]
    out = serve(zones, QUIET, spec, "spot-hedge", loop=False)
    assert out.preemptions == 2
    assert (out.spot_hours, out.on_demand_hours) == (Decimal("0.47"), Decimal("0.08"))
    assert out.cost == Decimal("0.72")  # 1700 / 3600 + 300 x 3 / 3600 = 0.7222
    assert out.available == pytest.approx(400 / 500)


@given(
    ticks=st.lists(st.lists(st.integers(0, 1), min_size=12, max_size=12), min_size=1, max_size=4),
    policy=st.sampled_from(["on-demand", "spot", "spot-hedge"]),
)
@settings(max_examples=30, deadline=None)
def test_the_memo_never_changes_a_decision(ticks: list[list[int]], policy: str) -> None:
    """The memo returns the engine's earlier answer for the same sites' state: with and
    without it, every figure of the run is the same; only the engine's calls differ."""
    zones = [zone(f"z{n}", *t) for n, t in enumerate(ticks)]
    requests = [LlmRequest(float(s), 100, 5) for s in range(0, 1200, 40)]
    memo = serve(zones, requests, SPEC, policy, loop=False)
    fresh = serve(zones, requests, SPEC, policy, loop=False, memo=False)
    assert fresh.engine_calls == fresh.decisions >= memo.engine_calls
    same = dataclasses.replace(memo, engine_calls=fresh.engine_calls)
    assert same == fresh
