"""Private offers end to end: a contract price ranks, obeys the policy, and is found.

Also what a user meets when a provider has no offers at all: one line saying
so and how to add contract prices, never a plan that rejects every offer.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archipel.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

NO_PRICE_LIST = (
    "coreweave has no public price list in the catalog; add your contract prices with "
    "--offers FILE (see docs/catalog.md#private-offers)"
)

# a reserved 8x H100 node far below every public price, and a German provider the
# registry does not know, declaring its facts
CONTRACT = """\
offers:
  - {provider: coreweave, region: US-EAST-04, country: US, instance: gd-8xh100ib-i128,
     accelerator: H100, count: 8, gpu_memory_gib: 80, price: 5, currency: USD, capacity: 8}
  - {provider: acme-gpu, region: fra1, country: DE, instance: h100x1,
     accelerator: H100, count: 1, gpu_memory_gib: 80, price: "0.40", currency: EUR}
providers:
  - id: acme-gpu
    name: Acme GPU
    kind: neocloud
    hq_country: DE
    cloud_act: {exposure: "no", reason: German GmbH without a US parent}
"""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(CONTRACT)
    return path


def first_provider(out: str) -> str:
    return str(json.loads(out)["plans"][0]["placements"][0]["provider"])


def test_a_contract_price_ranks_first(contract: Path) -> None:
    code, out, _ = run("plan", "--gpus", "H100:8", "--offers", str(contract), "--json")
    assert code == 0
    assert first_provider(out) == "coreweave"


def test_a_contract_offer_obeys_the_policy(contract: Path) -> None:
    """CoreWeave is in the US and exposed to the CLOUD Act: `health` refuses it, price or not."""
    code, out, _ = run(
        "plan",
        "--gpus",
        "H100:8",
        "--data-class",
        "health",
        "--offers",
        str(contract),
        "--explain",
        "coreweave/US-EAST-04/gd-8xh100ib-i128",
        "--json",
    )
    assert code == 0
    (verdict,) = json.loads(out)
    assert verdict["feasible"] is False
    assert {r["reason"] for r in verdict["rejections"]} == {"country", "cloud_act"}


def test_a_declared_provider_is_judged_on_its_declared_facts(contract: Path) -> None:
    """Acme states a German site and no CLOUD Act exposure: `health` accepts it."""
    code, out, _ = run(
        "plan", "--gpus", "H100:1", "--data-class", "health", "--offers", str(contract), "--json"
    )
    assert code == 0
    assert first_provider(out) == "acme-gpu"


def test_an_unknown_provider_without_facts_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CONTRACT.split("providers:")[0])
    code, out, err = run("plan", "--gpus", "H100:1", "--offers", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}:4: provider acme-gpu is not in the registry")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["plan", "--gpus", "H100:8", "--providers", "coreweave"], id="plan"),
        pytest.param(["catalog", "--providers", "coreweave"], id="catalog"),
    ],
)
def test_a_provider_without_offers_says_how_to_add_them(command: list[str]) -> None:
    code, out, err = run(*command)
    assert (code, out, err) == (2, "", f"error: {NO_PRICE_LIST}\n")


def test_a_workload_file_naming_only_such_a_provider_says_the_same(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text(
        "name: w\nkind: batch\nresources: {accelerators: ['H100:8']}\n"
        "constraints: {providers: [coreweave]}\n"
    )
    code, _, err = run("plan", str(spec))
    assert (code, err) == (2, f"error: {NO_PRICE_LIST}\n")


def test_a_misspelt_provider_is_an_unknown_name_not_a_missing_price_list(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text(
        "name: w\nkind: batch\nresources: {accelerators: ['H100:8']}\n"
        "constraints: {providers: [corewave]}\n"
    )
    code, _, err = run("plan", str(spec))
    assert code == 2
    assert "unknown provider corewave; did you mean coreweave?" in err
    assert "price list" not in err


def test_naming_one_such_provider_among_others_is_a_note(tmp_path: Path) -> None:
    code, out, err = run("catalog", "--providers", "coreweave,aws", "--gpus", "H100:8", "--json")
    assert code == 0
    assert {json.loads(line)["provider"] for line in out.splitlines()} == {"aws"}
    assert err == f"note: {NO_PRICE_LIST}\n"


def test_the_environment_names_a_default_offers_file(contract: Path) -> None:
    code, out, err = run(
        "catalog", "--providers", "coreweave", "--json", env={"ARCHIPEL_OFFERS": str(contract)}
    )
    assert (code, err) == (0, "")
    (offer,) = [json.loads(line) for line in out.splitlines()]
    assert (offer["provider"], Decimal(offer["price_per_hour"])) == ("coreweave", Decimal(5))


def fleet(tmp_path: Path, replicas: int) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "name: f\nhorizon: {start: '2026-12-01', end: '2026-12-02'}\n"
        "offers: contract.yaml\n"
        "workloads:\n"
        "- name: serve\n  kind: inference\n  resources: {accelerators: ['H100:8']}\n"
        f"  replicas: {replicas}\n  constraints: {{providers: [coreweave]}}\n"
        "  data: {class: internal}\n  spread: {min_providers: 1}\n"
    )
    return path


def test_a_fleet_file_names_its_offers_and_their_capacity_binds(
    tmp_path: Path, contract: Path
) -> None:
    """The contract reserves 8 GPUs: one 8-GPU replica fits, two do not."""
    code, out, _ = run("fleet", "plan", str(fleet(tmp_path, 1)), "--json")
    assert code == 0, out
    assert "coreweave" in out
    code, _, _ = run("fleet", "plan", str(fleet(tmp_path, 2)), "--json")
    assert code == 1
