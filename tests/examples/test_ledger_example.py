"""The example year of examples/ledger: it is what its generator makes, and it makes sense.

The generator is run again into a temporary folder and must give the very
entries committed (so the file cannot drift from its script); the entries are
then checked against facts the generator does not decide: the ledger's
native format, the fleet engine's own plan and prices, the policy's places
for each data class, and the events the README tells.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from archipel.catalog import SNAPSHOT_FILE, load_snapshot
from archipel.core import Money
from archipel.ledger import Entry
from archipel.policy import default_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ledger"
TRACES = Path(os.environ.get("ARCHIPEL_TRACES", "/work/shared/data/traces"))
REQUIRED = ("source", "key", "start", "end", "tenant")
DECIMAL = re.compile(r"^-?\d+(\.\d{1,15})?$")
OUTAGE = (date(2026, 4, 13), date(2026, 4, 20))


@cache
def lines() -> tuple[dict[str, Any], ...]:
    with gzip.open(EXAMPLE / "year.jsonl.gz", "rt") as fh:
        return tuple(json.loads(line) for line in fh)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ledger_example", EXAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_year_is_what_the_generator_makes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # the entries, byte for byte (the gzip around them depends on the zlib build)
    made = gzip.decompress((tmp_path / "year.jsonl.gz").read_bytes())
    assert made == gzip.decompress((EXAMPLE / "year.jsonl.gz").read_bytes())
    assert (EXAMPLE / "year.jsonl.gz").stat().st_size < 2_000_000


@pytest.mark.skipif(not TRACES.is_dir(), reason=f"the public traces are not in {TRACES}")
def test_the_shapes_are_what_the_traces_give() -> None:
    derived = _generator().derive_shapes(TRACES)
    assert derived == json.loads((EXAMPLE / "shapes.json").read_text())


def _entry(doc: dict[str, Any]) -> Entry:
    """A native-format line as a ledger Entry (the reader `ledger ingest --entries` will be)."""
    known = {f.name for f in dataclasses.fields(Entry)}
    fields = {k: v for k, v in doc.items() if k in known and k not in ("cost", "currency")}
    fields["start"] = datetime.fromisoformat(doc["start"])
    fields["end"] = datetime.fromisoformat(doc["end"])
    fields["gpu_hours"] = Decimal(doc["gpu_hours"])
    fields["cost"] = Money(Decimal(doc["cost"]), doc["currency"])
    return Entry(**fields)


def test_every_line_is_a_native_entry() -> None:
    keys = set()
    for doc in lines():
        assert all(doc.get(name) for name in REQUIRED), doc
        for name in ("gpu_hours", "cost"):
            assert isinstance(doc[name], str) and DECIMAL.match(doc[name]), (name, doc)
        assert re.match(r"^[A-Z]{3}$", doc["currency"])
        for name in ("start", "end"):
            assert datetime.fromisoformat(doc[name]).utcoffset() is not None
        entry = _entry(doc)
        assert entry.end > entry.start
        keys.add((entry.source, entry.key))
    assert len(keys) == len(lines())  # one entry per identity: nothing to correct


def test_the_year_runs_from_the_contracts_start_to_the_day_before_its_today() -> None:
    starts = sorted({doc["start"][:10] for doc in lines()})
    assert (starts[0], starts[-1], len(starts)) == ("2025-11-01", "2026-11-29", 394)


@cache
def planned() -> dict[str, list[dict[str, Any]]]:
    """The fleet engine's own plan of the lab, on the shipped catalog."""
    env = {**os.environ, "ARCHIPEL_CATALOG": str(SNAPSHOT_FILE)}
    out = subprocess.run(
        [str(Path(sys.executable).with_name("archipel")), "fleet", "plan",
         str(ROOT / "examples/fleet/lab.yaml"), "--json"],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return {a["workload"]: a["placements"] for a in json.loads(out.stdout)["assignments"]}


def test_runs_are_priced_at_the_planned_price_per_gpu_hour() -> None:
    """Each run's cost is its GPU-hours times the engine's price per GPU-hour of that
    placement, to the cent; OCI's A100 price is 20% lower from June 2026."""
    prices = {}
    for workload, placements in planned().items():
        for p in placements:
            per_gpu = Decimal(p["offer_price_per_node_hour"]) / p["accelerator_count"]
            where = (p["provider"], p["region"], p["accelerator"])
            prices[(workload, *where)] = (per_gpu, p["offer_currency"])
    checked = 0
    for doc in lines():
        if doc["source"] != "runs":
            continue
        # during the outage a placement runs where a sibling of its family runs
        where = (doc["provider"], doc["region"], doc["accelerator"])
        found = [v for (w, *at), v in prices.items()
                 if tuple(at) == where and (w == doc["workload"] or _outage(doc))]  # fmt: skip
        assert found, doc
        price, currency = found[0]
        if doc["provider"] == "oci" and doc["accelerator"] == "A100-80GB" and _after_cut(doc):
            price *= Decimal("0.8")
        assert doc["currency"] == currency
        assert abs(Decimal(doc["gpu_hours"]) * price - Decimal(doc["cost"])) <= Decimal("0.005")
        assert Decimal(doc["gpu_hours"]) == int(Decimal(doc["gpu_hours"]))  # whole GPU-hours
        checked += 1
    assert checked > 5000


def _outage(doc: dict[str, Any]) -> bool:
    return OUTAGE[0] <= date.fromisoformat(doc["start"][:10]) < OUTAGE[1]


def _after_cut(doc: dict[str, Any]) -> bool:
    return date.fromisoformat(doc["start"][:10]) >= date(2026, 6, 1)


def test_no_data_class_leaves_the_places_its_policy_allows() -> None:
    """health and sovereign stay in the EU/EEA with the providers their rules allow;
    personal stays in the EU/EEA or an adequacy country (docs/policy.md)."""
    policy = default_policy()
    snapshot = load_snapshot(SNAPSHOT_FILE)
    seen = set()
    for doc in lines():
        if doc["provider"] is None:
            continue  # a request no replica answered
        cls = policy.data_classes[doc["data_class"]]
        facts = snapshot.providers[doc["provider"]]
        for rule in cls.rules:
            if rule.name == "site_in":
                places = snapshot.jurisdictions.countries(rule.places)  # type: ignore[attr-defined]
                assert doc["country"] in places, (rule, doc)
            elif rule.name == "cloud_act_exposure":
                assert facts.cloud_act in rule.allowed, (rule, doc)  # type: ignore[attr-defined]
            elif rule.name == "secnumcloud":
                assert facts.secnumcloud == "qualified", (rule, doc)
        seen.add(doc["data_class"])
    assert {"health", "sovereign", "personal"} <= seen
    eu = snapshot.jurisdictions.eu_eea
    for doc in lines():
        if doc["data_class"] in ("health", "sovereign") and doc["provider"] is not None:
            assert doc["country"] in eu


def _sums(source: str | None = None) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for doc in lines():
        if doc["provider"] is not None and source in (None, doc["source"]):
            out[(doc["provider"], doc["currency"])] += Decimal(doc["cost"])
    return out


def test_sums_per_provider_tell_the_readme_story() -> None:
    sums = _sums()
    usd = {p: v for (p, c), v in sums.items() if c == "USD"}
    total = sum(sums.values())  # EUR is under 2% of it: its rate does not change the shares
    assert usd["oci"] / total <= Decimal("0.45")  # the concentration cap of finops.yaml
    spec = yaml.safe_load((EXAMPLE / "finops.yaml").read_text())
    first_year: dict[str, Decimal] = defaultdict(Decimal)
    for doc in lines():
        if doc["start"] < "2026-11-01" and doc["provider"] is not None:
            first_year[doc["provider"]] += Decimal(doc["cost"])
    for commitment in spec["commitments"]:
        assert sum(commitment["ramp"]) == commitment["amount"]
        years = len(commitment["ramp"])
        period = commitment["period"]
        assert int(period["end"][:4]) - int(period["start"][:4]) == years
    ramp = {c["provider"]: Decimal(c["ramp"][0]) for c in spec["commitments"]}
    amount = {c["provider"]: Decimal(c["amount"]) for c in spec["commitments"]}
    assert first_year["azure"] >= ramp["azure"]
    assert first_year["oci"] < ramp["oci"]  # short in its first year...
    assert first_year["oci"] * 5 < amount["oci"] * Decimal("0.95")  # ...and at term end
    assert first_year["aws"] >= ramp["aws"]


def test_the_outage_week_moves_azure_eastus_elsewhere() -> None:
    during = [doc for doc in lines() if _outage(doc) and doc["status"] != 503]
    assert during and not [d for d in during if (d["provider"], d["region"]) == ("azure", "eastus")]
    before = [d for d in lines() if d["start"].startswith("2026-04-12")]
    assert [d for d in before if (d["provider"], d["region"]) == ("azure", "eastus")]
    failed = [d for d in lines() if d["status"] == 503]
    assert failed and all(_outage(d) and d["cost"] == "0.00" for d in failed)


def test_the_health_tenant_runs_over_its_monthly_budget_from_october() -> None:
    """Converted at the catalog's EUR rate, health spends under 80% of its EUR 8,500
    until September 2026 and over 100% in October and November."""
    snapshot = load_snapshot(SNAPSHOT_FILE)
    usd_per_eur = Decimal(str(snapshot.fx_rates["EUR"]))
    monthly: dict[str, Decimal] = defaultdict(Decimal)
    for doc in lines():
        if doc["tenant"] == "health":
            cost = Decimal(doc["cost"])
            monthly[doc["start"][:7]] += cost if doc["currency"] == "EUR" else cost / usd_per_eur
    budget = Decimal(8500)
    assert all(v < budget * Decimal("0.8") for m, v in monthly.items() if m < "2026-10")
    assert monthly["2026-10"] > budget and monthly["2026-11"] > budget


def test_the_ledger_tells_the_story_as_of_its_today() -> None:
    """Burned down and forecast by the ledger itself, on 2026-11-30: AWS on track (no
    alert), OCI short of its commitment and of its first year's minimum, Azure over;
    the health tenant over its monthly budget, and no other budget alerting."""
    import duckdb

    from archipel.core import parse_finops
    from archipel.ledger import budget_alerts, budget_status, burn_down, commitment_alerts
    from archipel.ledger._frame import ENTRY_COLUMNS, create_entries

    connection = duckdb.connect()
    create_entries(connection)
    # the native lines straight into the `entries` relation of the contract (its times all
    # end in Z: UTC); project and accelerator included, which Entry may not carry yet
    text = {name: "VARCHAR" for name in ENTRY_COLUMNS}
    text.update(status="INTEGER", input_tokens="BIGINT", output_tokens="BIGINT")
    columns = ", ".join(
        f"CAST(rtrim(\"{c}\", 'Z') AS TIMESTAMP)" if c in ("start", "end")
        else f'CAST("{c}" AS DECIMAL(38, 15))' if c in ("gpu_hours", "cost")
        else f'"{c}"'
        for c in ENTRY_COLUMNS
    )  # fmt: skip
    connection.execute(
        f"INSERT INTO entries SELECT {columns} FROM read_json(?, format = 'newline_delimited', "
        f"columns = {text!r})",
        [str(EXAMPLE / "year.jsonl.gz")],
    )
    assert connection.execute("SELECT count(*) FROM entries").fetchone() == (len(lines()),)
    spec = parse_finops(yaml.safe_load((EXAMPLE / "finops.yaml").read_text()), "finops.yaml")
    rates = load_snapshot(SNAPSHOT_FILE).fx_rates
    today = date(2026, 11, 30)
    burns = burn_down(connection, spec, rates=rates, today=today)
    alerts = {(a.subject, a.kind) for a in commitment_alerts(burns, spec.alerts)}
    assert alerts == {("oci-2025", "shortfall"), ("azure-2025", "overrun")}
    statuses = budget_status(connection, spec, rates=rates, today=today)
    assert {(a.subject, a.kind) for a in budget_alerts(statuses)} == {("health-monthly", "budget")}
