"""``archipel ledger ingest --focus/--cur`` and ``archipel ledger export --focus`` end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from archipel.cli import app

DATA = Path(__file__).parents[1] / "ledger" / "data"

SPEC = """\
currency: EUR
commitments:
- name: aws-2025
  provider: aws
  amount: 3800000
  currency: USD
  period: {start: 2025-11-01, end: 2032-11-01}
  discount: 0.15
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ARCHIPEL_DATA_DIR", str(tmp_path / "home"))

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_ingest_a_focus_file_then_export_it(run: Any, tmp_path: Path) -> None:
    code, out, err = run("ledger", "ingest", "--focus", str(DATA / "focus-sample.csv"))
    assert code == 1  # two bad rows, reported and skipped
    assert "5 new" in out
    assert f"skipped {DATA / 'focus-sample.csv'}:7: EffectiveCost" in err
    code, out, _ = run("ledger", "ingest", "--cur", str(DATA / "cur2-sample.csv"), "--json")
    assert code == 1
    assert json.loads(out)["new"] == 3
    spec = tmp_path / "finops.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    code, out, err = run("ledger", "export", "--focus", str(tmp_path / "out"), str(spec), "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["cost_and_usage_rows"], doc["contract_commitment_rows"]) == (8, 1)
    with (tmp_path / "out" / "cost_and_usage.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    sources = sorted(r["x_Source"] for r in rows)
    assert sources == ["cur"] * 3 + ["focus:aws"] * 4 + ["focus:azure"]
    aws_hour = next(r for r in rows if r["x_Key"].startswith("yq3s2f5k7x2wq6vn4mhb/"))
    applied = json.loads(aws_hour["ContractApplied"])["Elements"][0]
    # under the commitment's name, and billed as the provider billed it: an imported row
    # is net of the commitment's 15% discount already, so it is not taken again
    assert (applied["ContractID"], aws_hour["BilledCost"]) == ("aws-2025", "98.320000000000000")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["ledger", "ingest"], "give one file to ingest"),
     (["ledger", "ingest", "--focus", "nope.csv"], "--focus nope.csv: no such file"),
     (["ledger", "export", "--focus", "out", "--format", "xml"], "choose csv, parquet or both"),
     (["ledger", "export", "--focus", "out", "missing.yaml"], "missing.yaml")],
    ids=["no-file", "missing-focus", "bad-format", "missing-spec"],
)  # fmt: skip
def test_bad_input_exits_2_and_says_what_to_change(run: Any, args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in err
