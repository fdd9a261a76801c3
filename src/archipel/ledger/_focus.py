"""The ledger as FinOps FOCUS 1.3 files: the Cost and Usage and Contract Commitment datasets.

:func:`export_focus` reads the ``entries`` relation (see :mod:`._frame`) and
the commitments of a FinOps spec, and writes each dataset as CSV and/or
Parquet with DuckDB's ``COPY`` (no data-frame library in between). One entry
is one Cost and Usage row (``ChargeCategory`` "Usage"); one commitment is one
Contract Commitment row. docs/focus.md maps every column.

Money stays exact: Parquet columns are ``DECIMAL(38, 15)``, CSV cells the same
decimals as plain text. The one computed amount is a commitment's discount
(``BilledCost = cost x (1 - discount)``), kept to the ledger's 15 decimals.

Archipel's own facts are ``x_`` columns, as FOCUS asks of custom columns:
data class, policy version, workload, GPU-hours, tokens, country, whether the
country is in the EU/EEA or has an adequacy decision, the provider's CLOUD Act
exposure (from the provider registry), and an *estimated* energy in kWh with
its method (:data:`BOARD_POWER_W`, :data:`DEFAULT_PUE`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import duckdb.func as duckdb_func

from archipel.core import Commitment, InputError, Jurisdictions, ProviderFacts
from archipel.ledger._commitments import SERVICE
from archipel.ledger._frame import LIST_PRICED

FOCUS_VERSION = "1.3"

#: board power (TDP) of each accelerator in watts, the figure its maker publishes;
#: the SXM/OAM part where a PCIe one exists, since that is what clouds rent for training
BOARD_POWER_W: Mapping[str, tuple[int, str]] = {
    "H100": (700, "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: up to 700 W"),
    "H200": (700, "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: up to 700 W"),
    "B200": (1000, "NVIDIA HGX B200 specifications: up to 1,000 W per GPU"),
    "A100": (400, "NVIDIA A100 Tensor Core GPU datasheet, A100 SXM: 400 W"),
    "L40S": (350, "NVIDIA L40S datasheet: 350 W maximum power"),
    "L4": (72, "NVIDIA L4 datasheet: 72 W maximum power"),
    "A10G": (150, "NVIDIA A10 datasheet: 150 W maximum power (AWS A10G is its variant)"),
    "A10": (150, "NVIDIA A10 datasheet: 150 W maximum power"),
    "V100": (300, "NVIDIA V100 datasheet, V100 SXM2: 300 W"),
    "T4": (70, "NVIDIA T4 datasheet: 70 W"),
    "MI300X": (750, "AMD Instinct MI300X data sheet: 750 W peak board power"),
}

#: power usage effectiveness assumed when a site states none: the 2024 global average
#: of the Uptime Institute Global Data Center Survey (1.56); hyperscale sites report
#: lower (about 1.1), so the estimate leans high rather than low
DEFAULT_PUE = Decimal("1.56")

#: the export's money and quantity type: the ledger's own exact decimal
DECIMAL = "DECIMAL(38, 15)"

#: a commitment's discount is read to at most this many decimals (so that
#: ``cost x (1 - discount)`` stays inside DuckDB's exact 38-digit decimals)
DISCOUNT_DECIMALS = 6


class Format(StrEnum):
    """Which files :func:`export_focus` writes."""

    csv = "csv"
    parquet = "parquet"
    both = "both"


@dataclass(frozen=True, slots=True)
class FocusFacts:
    """What the export needs besides the entries: the registry's facts and the run's choices.

    ``providers`` and ``jurisdictions`` are the catalog's fact tables
    (:func:`archipel.catalog.load_providers`, :func:`~archipel.catalog.load_jurisdictions`).
    ``account`` names the billing account the rows belong to (the Archipel
    deployment), ``policy_version`` the policy in force (``x_PolicyVersion``),
    ``currency`` the billing currency of entries that have none (unpriced).
    """

    providers: Mapping[str, ProviderFacts]
    jurisdictions: Jurisdictions
    account: str = "archipel"
    policy_version: str | None = None
    currency: str = "USD"
    pue: Decimal = DEFAULT_PUE
    board_power: Mapping[str, tuple[int, str]] = field(default_factory=lambda: BOARD_POWER_W)


@dataclass(frozen=True, slots=True)
class Exported:
    """What :func:`export_focus` wrote."""

    files: tuple[Path, ...]
    cost_and_usage_rows: int
    contract_commitment_rows: int


def policy_version(text: bytes) -> str:
    """The ``x_PolicyVersion`` of a policy file: ``sha256:`` and the first 12 hex digits."""
    return "sha256:" + hashlib.sha256(text).hexdigest()[:12]


def commitment_id(commitment: Commitment) -> str:
    """A commitment's ``ContractId``: its name, else its provider (``Commitment.label``)."""
    label = getattr(commitment, "label", None)
    if label:
        return str(label)
    name = getattr(commitment, "name", None)
    return str(name) if name else commitment.provider


def _discount(commitment: Commitment) -> Decimal | None:
    value = getattr(commitment, "discount", None)
    if value is None:
        return None
    rate = Decimal(str(value))
    if rate == 0:
        return None  # no discount: standard prices
    if not Decimal(0) <= rate < Decimal(1):
        raise InputError(
            f"commitment {commitment_id(commitment)}: discount {rate} is not a rate "
            "from 0 up to (not including) 1"
        )
    if rate != rate.quantize(Decimal(1).scaleb(-DISCOUNT_DECIMALS)):
        raise InputError(
            f"commitment {commitment_id(commitment)}: discount {rate} has more than "
            f"{DISCOUNT_DECIMALS} decimals; round it"
        )
    return rate


def _scope(commitment: Commitment, key: str) -> list[str] | None:
    burns = getattr(commitment, "burns", None)
    if burns is None:
        return None
    values = burns.get(key) if isinstance(burns, Mapping) else getattr(burns, key, None)
    return None if not values else [str(v) for v in values]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _load_facts(
    con: duckdb.DuckDBPyConnection, facts: FocusFacts, commitments: Sequence[Commitment]
) -> None:
    """The small tables the export joins the entries to, as DuckDB temp tables."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE focus_providers (id VARCHAR, name VARCHAR, cloud_act VARCHAR)"
    )
    rows = [
        (p.id, p.name, None if p.cloud_act is None else p.cloud_act.value)
        for p in facts.providers.values()
    ]
    if rows:
        con.executemany("INSERT INTO focus_providers VALUES (?, ?, ?)", rows)
    j = facts.jurisdictions
    con.execute("CREATE OR REPLACE TEMP TABLE focus_countries (country VARCHAR, grp VARCHAR)")
    groups = [(c, "EU/EEA") for c in sorted(j.eu_eea)]
    groups += [(c, "Adequacy") for c in sorted(j.adequacy_full - j.eu_eea)]
    groups += [(c, "Partial adequacy") for c in sorted(j.adequacy_partial - j.eu_eea)]
    con.executemany("INSERT INTO focus_countries VALUES (?, ?)", groups)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE focus_power (accelerator VARCHAR, watts INTEGER, "
        "kw DECIMAL(10, 3))"
    )
    power = [
        (name.upper(), watts, Decimal(watts).scaleb(-3))
        for name, (watts, _) in facts.board_power.items()
    ]
    if power:
        con.executemany("INSERT INTO focus_power VALUES (?, ?, ?)", power)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE focus_commitments (id VARCHAR, ord INTEGER, "
        'provider VARCHAR, currency VARCHAR, "start" TIMESTAMP, "end" TIMESTAMP, '
        f"keep DECIMAL(7, {DISCOUNT_DECIMALS}), regions VARCHAR[], accelerators VARCHAR[], "
        "services VARCHAR[])"
    )
    seen: set[str] = set()
    terms: list[tuple[Any, ...]] = []
    for order, c in enumerate(commitments):
        cid = commitment_id(c)
        if cid in seen:
            raise InputError(
                f"two commitments are both {cid!r}: give each a distinct `name` "
                "(ContractCommitmentId must be unique)"
            )
        seen.add(cid)
        discount = _discount(c)
        terms.append(
            (
                cid,
                order,
                c.provider,
                c.currency,
                _midnight(c.period.start),
                _midnight(c.period.end),
                None if discount is None else Decimal(1) - discount,
                _scope(c, "regions"),
                None if (a := _scope(c, "accelerators")) is None else [x.upper() for x in a],
                _scope(c, "services"),
            )
        )
    if terms:
        con.executemany(
            "INSERT INTO focus_commitments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", terms
        )


#: an entry's service, as the burn-down decides it (compute, inference, or neither: NULL)
_SERVICE = "(" + SERVICE.replace("source", "e.source").replace("coalesce(", "coalesce(e.") + ")"

#: the Cost and Usage rows, typed (timestamps in UTC, money DECIMAL(38, 15))
_COST_AND_USAGE = f"""
WITH numbered AS (
    SELECT row_number() OVER () AS _row, * FROM entries
),
matched AS (
    -- the first commitment of the spec (by its order) that the entry burns
    SELECT e._row, arg_min(c, c.ord) AS commitment
    FROM numbered e
    JOIN focus_commitments c
      ON c.provider = e.provider
     AND e.start >= c.start AND e.start < c."end"
     AND (c.regions IS NULL OR list_contains(c.regions, e.region))
     AND (c.accelerators IS NULL OR list_contains(c.accelerators, upper(e.accelerator)))
     AND (c.services IS NULL OR list_contains(c.services, {_SERVICE}))
    GROUP BY e._row
),
base AS (
    SELECT e.* EXCLUDE (_row), {_SERVICE} AS service,
           COALESCE(e.currency, $currency) AS billing_currency,
           p.name AS provider_name, p.cloud_act,
           g.grp AS jurisdiction, w.watts, w.kw,
           m.commitment
    FROM numbered e
    LEFT JOIN matched m ON m._row = e._row
    LEFT JOIN focus_providers p ON p.id = e.provider
    LEFT JOIN focus_countries g ON g.country = e.country
    LEFT JOIN focus_power w ON w.accelerator = upper(e.accelerator)
),
termed AS (
    SELECT base.*, t.id AS term_id
    FROM base
    LEFT JOIN focus_contract_commitment_source t
      ON t.contract_id = base.commitment.id
     AND base."start" >= t.period_start AND base."start" < t.period_end
),
priced AS (
    SELECT *,
           CAST(COALESCE(cost, 0) AS {DECIMAL}) AS list_cost,
           CAST(CASE WHEN commitment.keep IS NULL OR NOT ({LIST_PRICED}) THEN COALESCE(cost, 0)
                     ELSE COALESCE(cost, 0) * commitment.keep END AS {DECIMAL}) AS net_cost,
           service = 'compute' AS compute,
           CAST(CASE service WHEN 'compute' THEN COALESCE(gpu_hours, 0)
                     WHEN 'inference' THEN COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)
                END AS {DECIMAL}) AS quantity,
           CASE service WHEN 'compute' THEN 'GPU-Hours' WHEN 'inference' THEN 'Tokens' END
               AS unit,
           COALESCE(provider_name, provider, 'Unknown') AS service_provider
    FROM termed
)
SELECT
    net_cost AS BilledCost,
    $account AS BillingAccountId,
    $account AS BillingAccountName,
    billing_currency AS BillingCurrency,
    CAST(date_trunc('month', "start") + INTERVAL 1 MONTH AS TIMESTAMPTZ) AS BillingPeriodEnd,
    CAST(date_trunc('month', "start") AS TIMESTAMPTZ) AS BillingPeriodStart,
    'Usage' AS ChargeCategory,
    CAST(NULL AS VARCHAR) AS ChargeClass,
    CASE service
         WHEN 'compute' THEN 'GPU compute: ' || _plain(quantity) || ' GPU-hours'
              || COALESCE(' of ' || accelerator, '')
         WHEN 'inference' THEN 'Inference: ' || CAST(CAST(quantity AS BIGINT) AS VARCHAR)
              || ' tokens' || COALESCE(' of ' || model, '')
         ELSE 'Spend' || COALESCE(' of ' || workload, '')
    END || COALESCE(' on ' || service_provider, '') || COALESCE(' ' || region, '')
        AS ChargeDescription,
    'Usage-Based' AS ChargeFrequency,
    CAST("end" AS TIMESTAMPTZ) AS ChargePeriodEnd,
    CAST("start" AS TIMESTAMPTZ) AS ChargePeriodStart,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountCategory,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountId,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountName,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountStatus,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountType,
    quantity AS ConsumedQuantity,
    unit AS ConsumedUnit,
    CASE WHEN commitment.id IS NULL THEN NULL ELSE
        json_object('Elements', json_array(json_object(
            'ContractID', commitment.id,
            'ContractCommitmentID', COALESCE(term_id, commitment.id),
            'ContractCommitmentAppliedCost', _plain(net_cost)::JSON,
            'ContractCommitmentAppliedQuantity', NULL,
            'ContractCommitmentAppliedUnit', NULL)))::VARCHAR
    END AS ContractApplied,
    net_cost AS ContractedCost,
    _unit_price(net_cost, quantity) AS ContractedUnitPrice,
    net_cost AS EffectiveCost,
    service_provider AS HostProviderName,
    service_provider AS InvoiceIssuerName,
    list_cost AS ListCost,
    _unit_price(list_cost, quantity) AS ListUnitPrice,
    CASE WHEN commitment.keep IS NULL THEN 'Standard' ELSE 'Committed' END AS PricingCategory,
    quantity AS PricingQuantity,
    unit AS PricingUnit,
    service_provider AS ProviderName,
    service_provider AS PublisherName,
    region AS RegionId,
    region AS RegionName,
    workload AS ResourceId,
    workload AS ResourceName,
    CASE WHEN workload IS NULL THEN NULL WHEN service = 'compute' THEN 'GPU run'
         WHEN service = 'inference' THEN 'Model replica' ELSE 'Resource' END AS ResourceType,
    CASE service WHEN 'compute' THEN 'Compute' WHEN 'inference' THEN 'AI and Machine Learning'
         ELSE 'Other' END AS ServiceCategory,
    CASE service WHEN 'compute' THEN 'GPU compute' WHEN 'inference' THEN 'Model inference'
         ELSE 'Other' END AS ServiceName,
    service_provider AS ServiceProviderName,
    CASE service WHEN 'compute' THEN 'Virtual Machines' WHEN 'inference' THEN 'Generative AI'
         ELSE 'Other (Other)' END AS ServiceSubcategory,
    CASE service WHEN 'compute' THEN 'gpu:' || COALESCE(accelerator, 'unknown')
         WHEN 'inference' THEN 'tokens:' || COALESCE(model, 'unknown') ELSE 'other' END
        AS SkuId,
    CASE service WHEN 'compute' THEN 'gpu:' || COALESCE(accelerator, 'unknown')
         WHEN 'inference' THEN 'tokens:' || COALESCE(model, 'unknown') ELSE 'other' END
        || ':' || COALESCE(provider, 'unknown') || ':' || COALESCE(region, 'any')
        || ':' || billing_currency AS SkuPriceId,
    tenant AS SubAccountId,
    tenant AS SubAccountName,
    json_merge_patch('{{}}', json_object('project', project, 'data-class', data_class,
                                         'model', model))::VARCHAR AS Tags,
    data_class AS x_DataClass,
    CAST($policy_version AS VARCHAR) AS x_PolicyVersion,
    workload AS x_Workload,
    project AS x_Project,
    model AS x_Model,
    accelerator AS x_Accelerator,
    CAST(COALESCE(gpu_hours, 0) AS {DECIMAL}) AS x_GpuHours,
    COALESCE(input_tokens, 0) AS x_InputTokens,
    COALESCE(output_tokens, 0) AS x_OutputTokens,
    country AS x_Country,
    CASE WHEN country IS NULL THEN NULL ELSE COALESCE(jurisdiction, 'Other') END
        AS x_Jurisdiction,
    CASE WHEN country IS NULL THEN NULL ELSE jurisdiction = 'EU/EEA' END AS x_EuEea,
    cloud_act AS x_CloudActExposure,
    CASE WHEN cloud_act IS NULL THEN NULL ELSE cloud_act IN ('yes', 'via-parent') END
        AS x_CloudActExposed,
    CAST(CASE WHEN compute AND watts IS NOT NULL
              THEN COALESCE(gpu_hours, 0) * kw * CAST($pue AS DECIMAL(6, 3))
         END AS {DECIMAL}) AS x_EnergyKWh,
    CASE WHEN compute AND watts IS NOT NULL
             THEN 'estimate: GPU-hours x ' || CAST(watts AS VARCHAR)
                  || ' W board power (' || upper(accelerator) || ') x PUE '
                  || CAST($pue AS VARCHAR) || '; an upper bound'
         WHEN compute
             THEN 'not estimated: no board power known for accelerator '
                  || COALESCE(accelerator, '(none recorded)')
         WHEN service = 'inference'
             THEN 'not estimated: tokens are metered, not the GPU time a request used'
         ELSE 'not estimated: neither GPU-hours nor tokens'
    END AS x_EnergyMethod,
    source AS x_Source,
    key AS x_Key,
    status AS x_Status
FROM priced
ORDER BY "start", source, key
"""

#: the Contract Commitment rows (one per commitment; FOCUS 1.3's Contract Commitment dataset)
_CONTRACT_COMMITMENT = f"""
SELECT
    currency AS BillingCurrency,
    'Spend' AS ContractCommitmentCategory,
    CAST(amount AS {DECIMAL}) AS ContractCommitmentCost,
    description AS ContractCommitmentDescription,
    id AS ContractCommitmentId,
    CAST(period_end AS TIMESTAMPTZ) AS ContractCommitmentPeriodEnd,
    CAST(period_start AS TIMESTAMPTZ) AS ContractCommitmentPeriodStart,
    CAST(NULL AS {DECIMAL}) AS ContractCommitmentQuantity,
    'Committed spend' AS ContractCommitmentType,
    CAST(NULL AS VARCHAR) AS ContractCommitmentUnit,
    contract_id AS ContractId,
    CAST(contract_end AS TIMESTAMPTZ) AS ContractPeriodEnd,
    CAST(contract_start AS TIMESTAMPTZ) AS ContractPeriodStart,
    provider AS x_Provider,
    CAST(discount AS DECIMAL(7, {DISCOUNT_DECIMALS})) AS x_Discount
FROM focus_contract_commitment_source
ORDER BY ord, period_start
"""


def _commitment_rows(commitments: Sequence[Commitment]) -> list[tuple[Any, ...]]:
    """One row per commitment term: the whole term, or one per contract year with a ramp.

    With a yearly ``ramp`` (minimum spend per contract year), each year is its
    own commitment (``<id>/year-N``) under the contract (``ContractId`` = the
    commitment's id), whose cost is that year's minimum; without one, the
    commitment is a single row whose cost is its amount.
    """
    rows: list[tuple[Any, ...]] = []
    for order, c in enumerate(commitments):
        cid = commitment_id(c)
        start, end = _midnight(c.period.start), _midnight(c.period.end)
        discount = _discount(c)
        what = f"{c.amount} {c.currency} committed spend with {c.provider}"
        if discount is not None:
            what += f" at a {discount * 100:f}% discount off list prices"
        ramp = getattr(c, "ramp", None) or []
        if not ramp:
            amount = Decimal(c.amount)
            rows.append((cid, cid, order, c.provider, c.currency, amount, what, start, end,
                         start, end, discount))  # fmt: skip
            continue
        for year, minimum in enumerate(ramp):
            y_start = _add_years(start, year)
            y_end = min(_add_years(start, year + 1), end)
            rows.append((f"{cid}/year-{year + 1}", cid, order, c.provider, c.currency,
                         Decimal(str(minimum)), f"{what}: year {year + 1} minimum",
                         y_start, y_end, start, end, discount))  # fmt: skip
    return rows


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _contract_commitments(
    con: duckdb.DuckDBPyConnection, commitments: Sequence[Commitment]
) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE focus_contract_commitment_source (id VARCHAR, "
        "contract_id VARCHAR, "
        f"ord INTEGER, provider VARCHAR, currency VARCHAR, amount {DECIMAL}, "
        "description VARCHAR, period_start TIMESTAMP, period_end TIMESTAMP, "
        "contract_start TIMESTAMP, contract_end TIMESTAMP, "
        f"discount DECIMAL(7, {DISCOUNT_DECIMALS}))"
    )
    rows = _commitment_rows(commitments)
    if rows:
        con.executemany(
            "INSERT INTO focus_contract_commitment_source "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


#: dataset id -> file stem
COST_AND_USAGE = "cost_and_usage"
CONTRACT_COMMITMENT = "contract_commitment"


def focus_relations(
    con: duckdb.DuckDBPyConnection, facts: FocusFacts, commitments: Sequence[Commitment]
) -> None:
    """Create the tables ``focus_cost_and_usage`` and ``focus_contract_commitment`` on ``con``.

    ``con`` holds the ``entries`` relation; the tables are typed as the files are
    (timestamps with time zone, money ``DECIMAL(38, 15)``).
    """
    con.execute("SET TimeZone = 'UTC'")
    # a decimal as people write it: 1536, 0.5 (no trailing zeros), for descriptions
    register_unit_price(con)
    con.execute(
        "CREATE OR REPLACE TEMP MACRO _plain(x) AS "
        "CASE WHEN CAST(x AS VARCHAR) LIKE '%.%' "
        "THEN rtrim(rtrim(CAST(x AS VARCHAR), '0'), '.') ELSE CAST(x AS VARCHAR) END"
    )
    _load_facts(con, facts, commitments)
    _contract_commitments(con, commitments)
    params = {
        "currency": facts.currency,
        "account": facts.account,
        "policy_version": facts.policy_version,
        "pue": str(facts.pue),
    }
    select = _COST_AND_USAGE
    for name, value in params.items():
        select = select.replace(f"${name}", _literal(value))
    # tables, not views: each dataset is computed once however many files it is written to
    con.execute("DROP VIEW IF EXISTS focus_cost_and_usage")
    con.execute(f"CREATE OR REPLACE TEMP TABLE focus_cost_and_usage AS {select}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE focus_contract_commitment AS {_CONTRACT_COMMITMENT}")


_FEMTO = Decimal(1).scaleb(-15)
_LARGEST_PRICE = Decimal(10) ** 23


def unit_price(cost: Decimal, quantity: Decimal) -> Decimal | None:
    """``cost / quantity`` to the ledger's 15 decimals (half to even); ``None`` if undefined.

    The one division in the export, done in :class:`~decimal.Decimal` (DuckDB
    divides decimals in binary floating point); zero cost of zero quantity is
    a zero unit price.
    """
    if quantity == 0:
        return Decimal(0) if cost == 0 else None
    with localcontext() as ctx:
        ctx.prec = 80
        price = (cost / quantity).quantize(_FEMTO, rounding=ROUND_HALF_EVEN)
    # DECIMAL(38, 15) holds 23 digits before the point: a bigger price (a large cost
    # over a tiny quantity) has no exact column value, so it is left out, not rounded
    return price if abs(price) < _LARGEST_PRICE else None


def _unit_price_text(cost: str | None, quantity: str | None) -> str | None:
    if cost is None or quantity is None:
        return None
    price = unit_price(Decimal(cost), Decimal(quantity))
    return None if price is None else format(price, "f")


def register_unit_price(con: duckdb.DuckDBPyConnection) -> None:
    """``_unit_price(cost, quantity)`` in SQL: exact text both ways, never a float.

    A Python function (:func:`unit_price`) rather than SQL: DuckDB divides
    decimals in floating point, and exact long division in HUGEINT macros
    measured four times slower than this call per row.
    """
    with contextlib.suppress(duckdb.Error):  # not registered yet on this connection
        con.remove_function("_unit_price_text")
    con.create_function(
        "_unit_price_text",
        _unit_price_text,
        ["VARCHAR", "VARCHAR"],
        "VARCHAR",
        null_handling=duckdb_func.FunctionNullHandling.SPECIAL,
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO _unit_price(c, q) AS "
        f"CAST(_unit_price_text(CAST(c AS VARCHAR), CAST(q AS VARCHAR)) AS {DECIMAL})"
    )


def _literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def _csv_select(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """``view`` with its timestamps as ISO 8601 UTC text (``...Z``), the rest as it is."""
    described = con.execute(f"DESCRIBE {view}").fetchall()
    parts = []
    for name, kind, *_ in described:
        if str(kind).startswith("TIMESTAMP"):
            parts.append(f'strftime("{name}", \'%Y-%m-%dT%H:%M:%SZ\') AS "{name}"')
        else:
            parts.append(f'"{name}"')
    return f"SELECT {', '.join(parts)} FROM {view}"


def export_focus(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    facts: FocusFacts,
    commitments: Iterable[Commitment] = (),
    *,
    fmt: Format = Format.both,
) -> Exported:
    """Write ``cost_and_usage`` and ``contract_commitment`` as ``.csv`` and/or ``.parquet``.

    Each file is written under a temporary name and renamed once complete, so a
    failed export leaves no half-written file.
    """
    items = list(commitments)
    focus_relations(con, facts, items)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pending: list[tuple[Path, Path]] = []
    try:
        for stem, view in (
            (COST_AND_USAGE, "focus_cost_and_usage"),
            (CONTRACT_COMMITMENT, "focus_contract_commitment"),
        ):
            if fmt in (Format.csv, Format.both):
                final = out_dir / f"{stem}.csv"
                tmp = out_dir / f".{stem}.csv.partial"
                con.execute(
                    f"COPY ({_csv_select(con, view)}) TO '{_path(tmp)}' (HEADER, DELIMITER ',')"
                )
                pending.append((tmp, final))
            if fmt in (Format.parquet, Format.both):
                final = out_dir / f"{stem}.parquet"
                tmp = out_dir / f".{stem}.parquet.partial"
                con.execute(f"COPY {view} TO '{_path(tmp)}' (FORMAT parquet)")
                pending.append((tmp, final))
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in pending:
        tmp.replace(final)
        written.append(final)
    rows = con.execute("SELECT count(*) FROM focus_cost_and_usage").fetchone()
    commitments_rows = con.execute("SELECT count(*) FROM focus_contract_commitment").fetchone()
    return Exported(
        tuple(written),
        int(rows[0]) if rows else 0,
        int(commitments_rows[0]) if commitments_rows else 0,
    )


def _path(path: Path) -> str:
    return str(path).replace("'", "''")
