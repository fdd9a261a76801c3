"""The FOCUS 1.3 export: each entry a Cost and Usage row, each commitment term a Contract
Commitment row, money exact; and both datasets satisfy the hand-transcribed 1.3 oracle."""

from __future__ import annotations

import csv
import json
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ledger import focus_1_3
from tests.ledger.focus_ledger import COMMITMENTS, ROWS, facts, ledger_connection
from tests.profiles import examples

from archipel.core import InputError
from archipel.ledger._focus import Format, export_focus, unit_price


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _by_key(path: Path) -> dict[str, dict[str, str]]:
    header, rows = _read(path)
    return {row[header.index("x_Key")]: dict(zip(header, row, strict=True)) for row in rows}


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    export_focus(ledger_connection(), tmp_path, facts(policy_version="sha256:0123456789ab"),
                 COMMITMENTS)  # fmt: skip
    return tmp_path


# hand-computed from ROWS and COMMITMENTS (focus_ledger.py)
EXPECTED_ROWS: dict[str, dict[str, str]] = {
    "pretrain-1 on aws: GPU-hours, a commitment without discount, energy estimated": {
        "x_Key": "pretrain-1/2026-01-03/aws",
        "BilledCost": "6144.000000000000000",
        "EffectiveCost": "6144.000000000000000",
        "ListCost": "6144.000000000000000",
        "ContractedCost": "6144.000000000000000",
        "ListUnitPrice": "4.000000000000000",  # 6144 / 1536
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": "2026-01-03T00:00:00Z",
        "ChargePeriodEnd": "2026-01-04T00:00:00Z",
        "BillingPeriodStart": "2026-01-01T00:00:00Z",
        "BillingPeriodEnd": "2026-02-01T00:00:00Z",
        "ServiceCategory": "Compute",
        "ServiceProviderName": "Amazon Web Services",
        "HostProviderName": "Amazon Web Services",
        "ConsumedQuantity": "1536.000000000000000",
        "ConsumedUnit": "GPU-Hours",
        "PricingQuantity": "1536.000000000000000",
        "PricingUnit": "GPU-Hours",
        "PricingCategory": "Standard",
        "RegionId": "us-east-1",
        "SubAccountId": "research",
        "ResourceId": "pretrain-1",
        "x_DataClass": "public",
        "x_PolicyVersion": "sha256:0123456789ab",
        "x_GpuHours": "1536.000000000000000",
        "x_Country": "US",
        "x_EuEea": "false",
        "x_CloudActExposure": "yes",
        "x_CloudActExposed": "true",
        "x_EnergyKWh": "1677.312000000000000",  # 1536 h x 0.700 kW x 1.56
    },
    "finetune-7 on ovhcloud: EUR, EU/EEA, not CLOUD Act exposed": {
        "x_Key": "finetune-7/2026-02-10/ovhcloud",
        "BilledCost": "355.200000000000000",
        "BillingCurrency": "EUR",
        "ContractApplied": "",
        "x_Jurisdiction": "EU/EEA",
        "x_EuEea": "true",
        "x_CloudActExposure": "no",
        "x_CloudActExposed": "false",
        "x_EnergyKWh": "104.832000000000000",  # 96 h x 0.700 kW x 1.56
    },
    "a gateway request: tokens, no energy (and why)": {
        "x_Key": "req-7f3a",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "ConsumedQuantity": "1550.000000000000000",  # 1200 in + 350 out
        "ConsumedUnit": "Tokens",
        "ListUnitPrice": "0.000000600000000",  # 0.000930 / 1550
        "ChargePeriodEnd": "2026-02-11T09:00:02Z",
        "x_InputTokens": "1200",
        "x_OutputTokens": "350",
        "x_EnergyKWh": "",
        "x_EnergyMethod": "not estimated: tokens are metered, not the GPU time a request used",
    },
    "a failed request: no price, no provider, still a valid row": {
        "x_Key": "req-8c01",
        "BilledCost": "0.000000000000000",
        "BillingCurrency": "USD",
        "ServiceProviderName": "Unknown",
        "RegionId": "",
        "ResourceId": "",
        "x_Country": "",
        "x_EuEea": "",
        "x_Status": "503",
    },
    "eval-3 on azure: the commitment's 15% discount, in its first contract year": {
        "x_Key": "eval-3/2026-03-01/azure",
        "ListCost": "512.000000000000000",
        "BilledCost": "435.200000000000000",  # 512 x 0.85
        "EffectiveCost": "435.200000000000000",
        "ContractedCost": "435.200000000000000",
        "ContractedUnitPrice": "6.800000000000000",  # 435.2 / 64
        "ListUnitPrice": "8.000000000000000",  # 512 / 64
        "PricingCategory": "Committed",
        "x_EnergyKWh": "74.880000000000000",  # 64 h x 0.750 kW x 1.56
    },
    "sweep-2 on oci: GBP, an adequacy country": {
        "x_Key": "sweep-2/2026-03-05/oci",
        "BillingCurrency": "GBP",
        "x_Jurisdiction": "Adequacy",
        "x_EnergyKWh": "7.800000000000000",  # 12.5 h x 0.400 kW x 1.56
    },
    "probe-1: an accelerator without a known board power, 15-decimal money": {
        "x_Key": "probe-1/2026-03-06/nebius",
        "BilledCost": "0.987654321012345",
        "ListUnitPrice": "3.950617284049380",  # 0.987654321012345 / 0.25
        "x_EnergyKWh": "",
        "x_EnergyMethod": "not estimated: no board power known for accelerator GH200",
    },
}


@pytest.mark.parametrize("case", list(EXPECTED_ROWS), ids=list(EXPECTED_ROWS))
def test_each_entry_becomes_the_cost_and_usage_row_it_should(exported: Path, case: str) -> None:
    expected = EXPECTED_ROWS[case]
    row = _by_key(exported / "cost_and_usage.csv")[expected["x_Key"]]
    assert {name: row[name] for name in expected} == expected


def test_contract_applied_names_the_contract_and_the_term_a_charge_burns(exported: Path) -> None:
    row = _by_key(exported / "cost_and_usage.csv")["eval-3/2026-03-01/azure"]
    applied = json.loads(row["ContractApplied"], parse_float=Decimal)
    assert applied == {
        "Elements": [
            {
                "ContractID": "azure-2026",
                "ContractCommitmentID": "azure-2026/year-1",
                "ContractCommitmentAppliedCost": Decimal("435.2"),
                "ContractCommitmentAppliedQuantity": None,
                "ContractCommitmentAppliedUnit": None,
            }
        ]
    }


EXPECTED_COMMITMENTS = [
    # ContractCommitmentId, ContractId, Cost, PeriodStart, PeriodEnd, ContractPeriodEnd
    ("aws", "aws", "3800000.000000000000000",
     "2025-11-01T00:00:00Z", "2032-11-01T00:00:00Z", "2032-11-01T00:00:00Z"),
    ("azure-2026/year-1", "azure-2026", "100000.000000000000000",
     "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
    ("azure-2026/year-2", "azure-2026", "150000.000000000000000",
     "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
]  # fmt: skip


def test_each_commitment_term_is_a_contract_commitment_row(exported: Path) -> None:
    header, rows = _read(exported / "contract_commitment.csv")
    names = ("ContractCommitmentId", "ContractId", "ContractCommitmentCost",
             "ContractCommitmentPeriodStart", "ContractCommitmentPeriodEnd", "ContractPeriodEnd")  # fmt: skip
    got = [tuple(row[header.index(n)] for n in names) for row in rows]
    assert got == EXPECTED_COMMITMENTS
    assert {row[header.index("ContractCommitmentCategory")] for row in rows} == {"Spend"}


@pytest.mark.parametrize(
    ("dataset", "stem"),
    [(focus_1_3.COST_AND_USAGE, "cost_and_usage"),
     (focus_1_3.CONTRACT_COMMITMENT, "contract_commitment")],
    ids=["cost-and-usage", "contract-commitment"],
)  # fmt: skip
def test_the_export_satisfies_the_focus_1_3_oracle(exported: Path, dataset: Any, stem: str) -> None:
    header, rows = _read(exported / f"{stem}.csv")
    assert focus_1_3.problems(dataset, header, rows) == []
    if stem == "cost_and_usage":
        assert focus_1_3.subcategory_problems(header, rows) == []


def _drop(column: str) -> Any:
    def change(header: list[str], rows: list[list[str]]) -> None:
        i = header.index(column)
        del header[i]
        for row in rows:
            del row[i]

    return change


def _set(column: str, value: str) -> Any:
    def change(header: list[str], rows: list[list[str]]) -> None:
        rows[0][header.index(column)] = value

    return change


def _rename(column: str, to: str) -> Any:
    def change(header: list[str], rows: list[list[str]]) -> None:
        header[header.index(column)] = to

    return change


BROKEN = {
    "a mandatory column dropped": (_drop("BilledCost"), "BilledCost: mandatory column missing"),
    "the 1.3 provider column dropped": (
        _drop("ServiceProviderName"), "ServiceProviderName: mandatory column missing"),
    "a custom column without x_": (
        _rename("x_Workload", "Workload"), "Workload: not a FOCUS 1.3 column and not prefixed x_"),
    "a null where none is allowed": (
        _set("BillingCurrency", ""), "BillingCurrency (line 2): null, but the column allows no nulls"),
    "money in exponent notation": (
        _set("BilledCost", "6.144E+3"), "BilledCost (line 2): '6.144E+3' is not a plain decimal"),
    "a time without its zone": (
        _set("ChargePeriodStart", "2026-01-03 00:00:00"),
        "ChargePeriodStart (line 2): '2026-01-03 00:00:00' is not YYYY-MM-DDTHH:MM:SSZ"),
    "a value outside the allowed ones": (
        _set("ServiceCategory", "GPU"),
        "ServiceCategory (line 2): 'GPU' is not one of the allowed values"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_the_oracle_refuses_a_broken_export(exported: Path, case: str) -> None:
    change, expected = BROKEN[case]
    header, rows = _read(exported / "cost_and_usage.csv")
    change(header, rows)
    assert expected in focus_1_3.problems(focus_1_3.COST_AND_USAGE, header, rows)


def test_parquet_keeps_money_as_exact_decimals_and_times_in_utc(exported: Path) -> None:
    con = duckdb.connect()
    path = str(exported / "cost_and_usage.parquet")
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}
    assert described["BilledCost"] == "DECIMAL(38,15)"
    assert described["x_GpuHours"] == "DECIMAL(38,15)"
    assert described["ChargePeriodStart"] == "TIMESTAMP WITH TIME ZONE"
    billed = con.execute(f"SELECT x_Key, BilledCost FROM '{path}'").fetchall()
    assert dict(billed)["probe-1/2026-03-06/nebius"] == Decimal("0.987654321012345")
    # per currency, the billed sum is the entries' sum less the azure discount (512 x 0.15)
    sums = dict(con.execute(
        f"SELECT BillingCurrency, sum(BilledCost) FROM '{path}' GROUP BY 1").fetchall())  # fmt: skip
    assert sums == {
        "USD": Decimal("6144.00") + Decimal("435.20") + Decimal("0.987654321012345"),
        "EUR": Decimal("355.20") + Decimal("0.000930"),
        "GBP": Decimal("41.25"),
    }


def test_parquet_and_csv_hold_the_same_rows(exported: Path) -> None:
    con = duckdb.connect()
    csv_rows = _by_key(exported / "cost_and_usage.csv")
    path = str(exported / "cost_and_usage.parquet")
    for key, cost, quantity in con.execute(
        f"SELECT x_Key, BilledCost, ConsumedQuantity FROM '{path}'"
    ).fetchall():
        assert Decimal(csv_rows[key]["BilledCost"]) == cost
        assert Decimal(csv_rows[key]["ConsumedQuantity"]) == quantity
    assert len(csv_rows) == len(ROWS)


@pytest.mark.parametrize(
    ("fmt", "files"),
    [(Format.csv, {"cost_and_usage.csv", "contract_commitment.csv"}),
     (Format.parquet, {"cost_and_usage.parquet", "contract_commitment.parquet"})],
    ids=["csv", "parquet"],
)  # fmt: skip
def test_format_chooses_the_files(tmp_path: Path, fmt: Format, files: set[str]) -> None:
    export_focus(ledger_connection(), tmp_path, facts(), COMMITMENTS, fmt=fmt)
    assert {p.name for p in tmp_path.iterdir()} == files


def test_a_refused_commitment_leaves_no_file(tmp_path: Path) -> None:
    bad = COMMITMENTS[1].model_copy(update={"discount": Decimal("1.5")})
    with pytest.raises(InputError, match=r"discount 1\.5 is not a rate"):
        export_focus(ledger_connection(), tmp_path / "out", facts(), [bad])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_two_commitments_with_one_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give each a distinct `name`"):
        export_focus(ledger_connection(), tmp_path, facts(), [COMMITMENTS[0], COMMITMENTS[0]])


@pytest.mark.parametrize(
    ("cost", "quantity", "expected"),
    [("6144", "1536", "4.000000000000000"),
     ("1", "3", "0.333333333333333"),
     ("2", "3", "0.666666666666667"),
     ("0.000000000000001", "2", "0.000000000000000"),  # half to even
     ("0.000000000000003", "2", "0.000000000000002"),
     ("0", "0", "0"),
     ("5", "0", None),
     ("1000000000", "0.000000000000001", None)],  # 1e24: more than DECIMAL(38, 15) holds
)  # fmt: skip
def test_unit_price_divides_in_decimal_to_15_places(
    cost: str, quantity: str, expected: str | None
) -> None:
    price = unit_price(Decimal(cost), Decimal(quantity))
    assert (None if price is None else format(price, "f")) == expected


def test_an_empty_ledger_exports_headers_only(tmp_path: Path) -> None:
    export_focus(ledger_connection([]), tmp_path, facts(), [])
    header, rows = _read(tmp_path / "cost_and_usage.csv")
    assert rows == []
    assert focus_1_3.problems(focus_1_3.COST_AND_USAGE, header, rows) == []


_AMOUNTS = st.decimals(
    min_value=Decimal("-1000000"), max_value=Decimal("1000000000"), places=15, allow_nan=False
)


@settings(max_examples=examples(25))
@given(
    costs=st.lists(st.tuples(_AMOUNTS, st.sampled_from(["USD", "EUR", "GBP"])), max_size=12),
    order=st.randoms(use_true_random=False),
)
def test_billed_cost_sums_to_the_entries_sum_exactly_in_any_order(
    costs: list[tuple[Decimal, str]], order: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rows = [
        ("runs", f"k{i}", ROWS[0][2], ROWS[0][3], "t", None, None, None, "H100", "aws",
         "us-east-1", "US", None, None, Decimal(1), 0, 0, cost, currency)
        for i, (cost, currency) in enumerate(costs)
    ]  # fmt: skip
    order.shuffle(rows)
    out = tmp_path_factory.mktemp("focus")
    export_focus(ledger_connection(rows), out, facts(), [], fmt=Format.parquet)
    got = dict(
        duckdb.connect()
        .execute(
            f"SELECT BillingCurrency, sum(BilledCost) FROM '{out / 'cost_and_usage.parquet'}' "
            "GROUP BY 1"
        )
        .fetchall()
    )
    expected: dict[str, Decimal] = {}
    for cost, currency in costs:
        expected[currency] = expected.get(currency, Decimal(0)) + cost
    assert got == expected


@settings(max_examples=examples(200))
@given(cost=_AMOUNTS, quantity=st.decimals(min_value=Decimal("0.000000000000001"),
                                           max_value=Decimal("1e12"), places=15))  # fmt: skip
def test_a_unit_price_is_the_nearest_15_decimal_quotient(cost: Decimal, quantity: Decimal) -> None:
    price = unit_price(cost, quantity)
    with localcontext() as ctx:
        ctx.prec = 100
        if abs(cost / quantity) >= Decimal("1e23") - Decimal("0.5e-15"):
            assert price is None  # no DECIMAL(38, 15) holds it
            return
        assert price is not None
        assert price == price.quantize(Decimal("1e-15"))
        # no 15-decimal price is closer: the error is at most half a femto-unit per unit
        assert abs(price * quantity - cost) <= quantity * Decimal("0.5e-15")


@pytest.mark.parametrize(
    ("source", "billed"),
    [
        pytest.param("runs", "850.000000000000000", id="priced at list by Archipel: discounted"),
        pytest.param("focus:azure", "1000.000000000000000", id="a provider's billed row: as is"),
        pytest.param("cur", "1000.000000000000000", id="a CUR row: as is"),
    ],
)
def test_a_billed_row_is_never_discounted_twice(tmp_path: Path, source: str, billed: str) -> None:
    from tests.ledger.frames import frame

    row = {"start": "2026-03-01T00:00:00", "source": source, "key": "k", "cost": "1000",
           "provider": "azure", "region": "swedencentral", "country": "SE"}  # fmt: skip
    export_focus(frame(row), tmp_path, facts(), COMMITMENTS)
    (exported,) = _by_key(tmp_path / "cost_and_usage.csv").values()
    assert exported["BilledCost"] == billed
