"""The ``archipel`` command as a user meets it: output, documents, exit statuses."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from tests.facts import ADEQUACY_FULL, EEA, EU_MEMBER_STATES, PROVIDER_FACTS
from typer.testing import CliRunner

from archipel.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_json_is_the_documented_document() -> None:
    code, out, _ = run(
        "plan",
        "--gpus",
        "H100:8",
        "--data-class",
        "personal",
        "--hours",
        "24",
        "--json",
        "--top",
        "3",
    )
    assert code == 0
    top = json.loads(out)
    assert list(top) == ["feasible", "currency", "exchange_rates", "plans"]
    assert top["feasible"] is True and top["currency"] == "USD"
    (doc,) = top["plans"]
    assert len(doc["placements"]) == 3
    placement = doc["placements"][0]
    for key in [
        "provider",
        "region",
        "country",
        "instance_type",
        "accelerator",
        "accelerator_count",
        "nodes",
        "price_per_node_hour",
        "price_per_placement_hour",
        "total_cost",
        "offer_currency",
        "offer_price_per_node_hour",
        "offer_price_per_placement_hour",
        "offer_total_cost",
        "spot",
    ]:
        assert key in placement
    assert placement["accelerator"] == "H100" and placement["accelerator_count"] == 8
    assert isinstance(placement["price_per_node_hour"], str)  # exact decimal text
    for rejection in doc["rejections"]:
        assert set(rejection) >= {"reason", "count", "example"}
    # the values, not only the keys
    assert doc["request"]["accelerators"] == ["H100:8"]
    assert doc["request"]["data_class"] == "personal" and doc["request"]["hours"] == "24"
    assert [p["rank"] for p in doc["placements"]] == [1, 2, 3]
    hourly = [Decimal(p["price_per_placement_hour"]) for p in doc["placements"]]
    assert hourly == sorted(hourly)
    for p in doc["placements"]:
        assert Decimal(p["offer_total_cost"]) == Decimal(p["offer_price_per_node_hour"]) * 24
        assert Decimal(p["total_cost"]) == Decimal(p["price_per_node_hour"]) * 24
        assert p["offer_currency"] in top["exchange_rates"]
        if p["offer_currency"] == top["currency"]:
            assert p["total_cost"] == p["offer_total_cost"]
        # personal data: an EEA site or a full adequacy decision, a vetted provider
        assert p["country"] in EEA | ADEQUACY_FULL
        marketplace, cloud_act, _, iso27001 = PROVIDER_FACTS[p["provider"]]
        assert marketplace is False
        assert p["jurisdiction"]["cloud_act"] == cloud_act
        assert p["jurisdiction"]["iso27001"] == iso27001
    assert all(r["count"] > 0 for r in doc["rejections"])


def test_infeasible_plan_exits_one_and_still_explains() -> None:
    code, out, _ = run("plan", "--gpus", "H100:8", "--data-class", "sovereign", "--json")
    assert code == 1
    top = json.loads(out)
    (doc,) = top["plans"]
    assert top["feasible"] is False and doc["feasible"] is False and doc["placements"] == []
    assert {r["reason"] for r in doc["rejections"]} >= {"hardware", "certification"}


def test_plan_table_names_the_winner_and_the_rejections() -> None:
    code, out, _ = run("plan", "--gpus", "L40S:1", "--data-class", "health")
    assert code == 0
    assert "rejected" in out and "cloud_act" in out and "searched" in out


def test_example_portfolio_plans_every_workload() -> None:
    code, out, _ = run("plan", str(ROOT / "examples/workloads/portfolio.yaml"), "--json")
    doc = json.loads(out)
    assert code == 0, out
    assert doc["feasible"] is True
    assert [p["name"] for p in doc["plans"]] == [
        "llm-pretrain-public",
        "fine-tune-customer-chats",
        "clinical-notes-batch",
        "defence-rag-inference",
        "eval-sweep-internal",
    ]


def test_flags_override_the_file(tmp_path: Path) -> None:
    code, out, _ = run(
        "plan", str(ROOT / "examples/workloads/train-eu.yaml"), "--countries", "FI", "--json"
    )
    (doc,) = json.loads(out)["plans"]
    assert code == 0
    assert doc["request"]["countries"] == ["FI"]
    assert {p["country"] for p in doc["placements"]} == {"FI"}


def test_explain_says_why_an_offer_lost() -> None:
    code, out, _ = run(
        "plan",
        "--gpus",
        "H100:8",
        "--data-class",
        "health",
        "--explain",
        "aws/eu-west-2/p5.48xlarge",
    )
    assert code == 0
    assert "CLOUD Act" in out and "rejected" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan"], "give a workload FILE or --gpus"),
        (["plan", "--gpus", "H10:8"], "Did you mean"),
        (["plan", "--gpus", "H100:8", "--data-class", "secret"], "unknown data class"),
        (["plan", "--gpus", "H100:8", "--providers", "awz"], "unknown provider awz"),
        (["plan", "--gpus", "H100:8", "--countries", "France"], "ISO 3166"),
        (["plan", "missing.yaml"], "no such file"),
        (["plan", "--gpus", "H100:8", "--explain", "aws"], "PROVIDER/REGION/INSTANCE"),
    ],
    ids=[
        "nothing to plan",
        "accelerator typo",
        "data class",
        "provider typo",
        "country name",
        "missing file",
        "bad explain key",
    ],
)
def test_bad_input_exits_two_with_a_message(args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in err


JOB = "name: job\nkind: batch\nresources: {accelerators: [H100:8]}\ndata: {class: internal}\n"
FLEET = "horizon: {start: 2026-12-01, end: 2027-01-01}\nworkloads: [{file: job.yaml}]\n"
PERIOD = "period: {start: 2026-01-01, end: 2028-01-01}"


@pytest.mark.parametrize(
    ("command", "fleet", "job", "message"),
    [
        (
            "fleet",
            FLEET + f"commitments: [{{provider: ovh, amount: 1000000, {PERIOD}}}]\n",
            JOB,
            "commitments[0].provider: unknown provider ovh; did you mean ovhcloud?",
        ),
        (
            "fleet",
            FLEET + "capacity: [{provider: nebuis, accelerator: H100, gpus: 8}]\n",
            JOB,
            "capacity[0].provider: unknown provider nebuis; did you mean nebius?",
        ),
        (
            "fleet",
            FLEET + "capacity: [{provider: scaleway, region: fr-pa, accelerator: H100, gpus: 8}]\n",
            JOB,
            "capacity[0].region: unknown region fr-pa at scaleway; did you mean fr-par?",
        ),
        (
            "fleet",
            FLEET + "concentration: {max_share: 0.5, providers: {azur: 0.6}}\n",
            JOB,
            "concentration.providers: unknown provider azur; did you mean azure?",
        ),
        (
            "fleet",
            FLEET,
            JOB + "constraints: {exclude_providers: [lamda]}\n",
            "workload job: constraints.exclude_providers: unknown provider lamda; did you mean lambda?",
        ),
        (
            "plan",
            "",
            JOB + "constraints: {providers: [scaleway, ovh]}\n",
            "job: providers: unknown provider ovh; did you mean ovhcloud?",
        ),
        (
            "plan --exclude-providers",
            "",
            JOB,
            "--exclude-providers: unknown provider ovh; did you mean ovhcloud?",
        ),
        (
            "catalog --providers",
            "",
            "",
            "--providers: unknown provider ovh; did you mean ovhcloud?",
        ),
    ],
    ids=[
        "fleet commitment",
        "fleet capacity provider",
        "fleet capacity region",
        "fleet concentration cap",
        "workload exclude list in a fleet",
        "workload allow list",
        "plan flag",
        "catalog flag",
    ],
)
def test_unknown_provider_and_region_names_exit_two_with_a_suggestion(
    tmp_path: Path, command: str, fleet: str, job: str, message: str
) -> None:
    (tmp_path / "fleet.yaml").write_text(fleet)
    (tmp_path / "job.yaml").write_text(job)
    args = {
        "fleet": ["fleet", "plan", str(tmp_path / "fleet.yaml")],
        "plan": ["plan", str(tmp_path / "job.yaml")],
        "plan --exclude-providers": [
            "plan",
            str(tmp_path / "job.yaml"),
            "--exclude-providers",
            "ovh",
        ],
        "catalog --providers": ["catalog", "--providers", "ovh"],
    }[command]
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert message in err


@pytest.mark.parametrize("command", ["plan", "fleet plan"])
@pytest.mark.parametrize(
    ("content", "flags", "message"),
    [
        ("data: " + "[" * 1000 + "]" * 1000 + "\n", [], "nesting depth"),
        ("data:\n" + "".join("  " * i + "k:\n" for i in range(1, 40)), [], "nested more than 32"),
        ("workloads: []\n" + "#" * 9_000_000 + "\n", [], "larger than 8 MB"),
        (JOB + "#" * 2_000 + "\n", ["--max-file-size", "0.001"], "larger than 0.001 MB"),
    ],
    ids=["1,000 nested lists", "40 nested mappings", "9 MB", "above a lowered limit"],
)
def test_hostile_spec_files_exit_two_with_a_message(
    tmp_path: Path, command: str, content: str, flags: list[str], message: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(content)
    code, out, err = run(*command.split(), str(spec), *flags)
    assert (code, out) == (2, "")
    assert message in err and "spec.yaml" in err
    assert "Traceback" not in err


def test_nesting_that_exhausts_the_pure_python_parser_exits_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from archipel.cli import _config

    monkeypatch.setattr(_config, "_Loader", yaml.SafeLoader)  # without libyaml
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: " + "[" * 1000 + "]" * 1000 + "\n")
    code, _, err = run("fleet", "plan", str(spec))
    assert code == 2 and "nested more than 32" in err


def test_a_file_raised_above_the_default_limit_is_read() -> None:
    code, out, _ = run(
        "plan", str(ROOT / "examples/workloads/portfolio.yaml"), "--max-file-size", "50", "--json"
    )
    assert code == 0 and json.loads(out)["feasible"] is True


def test_bad_spec_file_names_each_field(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: job\nkind: trainig\nresources: {accelerators: H100:8, gpus: 3}\n")
    code, _, err = run("plan", str(spec))
    assert code == 2
    assert "kind:" in err and "resources.gpus: unknown field" in err


def test_malformed_yaml_is_reported_with_its_file(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: [unclosed\n")
    code, _, err = run("plan", str(spec))
    assert code == 2 and "not valid YAML" in err and "job.yaml" in err


def test_custom_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: finland\ndata_classes:\n  fi: {rules: [{site_in: [FI]}]}\n")
    code, out, _ = run(
        "plan", "--gpus", "H100:8", "--data-class", "fi", "--policy", str(policy), "--json"
    )
    assert code == 0
    assert {p["country"] for p in json.loads(out)["plans"][0]["placements"]} == {"FI"}


def test_catalog_lists_and_filters_offers() -> None:
    code, out, _ = run("catalog", "--gpus", "L40S", "--countries", "EU", "--json", "--limit", "50")
    assert code == 0
    offers = [json.loads(line) for line in out.splitlines()]
    assert offers and all(o["accelerator"] == "L40S" for o in offers)
    assert {o["country"] for o in offers} <= EU_MEMBER_STATES


def test_catalog_countries_eea_adds_iceland_liechtenstein_and_norway() -> None:
    code, out, _ = run("catalog", "--gpus", "RTXA4000:1", "--countries", "EEA", "--json")
    assert code == 0
    offers = [json.loads(line) for line in out.splitlines()]
    assert {o["country"] for o in offers} <= EEA
    assert ("hyperstack", "NORWAY-1", "NO") in {
        (o["provider"], o["region"], o["country"]) for o in offers
    }
    code, out, _ = run("catalog", "--gpus", "RTXA4000:1", "--countries", "EU", "--json")
    assert "NORWAY-1" not in out


def test_catalog_filters_by_provider_and_lists_accelerators() -> None:
    code, out, _ = run("catalog", "--providers", "scaleway", "--limit", "5")
    assert code == 0 and "scaleway" in out
    code, out, _ = run("catalog", "--accelerators")
    assert code == 0 and "H100" in out.split() and "Trainium" in out.split()


def test_policy_show_lists_the_data_classes() -> None:
    code, out, _ = run("policy", "show")
    assert code == 0
    for name in ["public", "internal", "confidential", "personal", "health", "sovereign"]:
        assert f"\n{name}:" in out


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("archipel ")


@pytest.mark.parametrize("tenant", ["", "acme corp"], ids=["empty", "space"])
def test_token_create_refuses_a_tenant_name_that_is_no_slug(
    tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIPEL_DATA_DIR", str(tmp_path))
    code, out, err = run("token", "create", "--tenant", tenant, "--role", "viewer")
    assert code == 2 and out == ""
    assert "--tenant" in err and "is not a tenant name" in err
