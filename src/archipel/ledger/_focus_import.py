"""Reading a provider's cost file: FOCUS 1.0 to 1.3 (CSV or Parquet) or AWS CUR 2.0 columns.

:func:`read_cost_file` is a pure function of the file: it yields entries and
problems, ``chunk`` rows at a time, and writes nothing; :func:`ingest_cost_file`
adds them to a ledger with :meth:`Ledger.add`, one transaction per chunk, as the
usage ingest does (a columnar bulk path can take the same chunks).

Each row is one entry. Its source is ``focus:<provider>`` (``cur`` for a CUR
file). Its key is the row's identity, stable across re-exports of the same
period, so that ingesting a file again adds nothing:

- FOCUS has no row id: the key is the charge period start and a digest of the
  columns that tell two charges apart (account, sub-account, period, charge
  category and class, resource, SKU price, region, unit, commitment discount,
  description); the n-th row of a file with the same identity gets ``#n``.
- CUR 2.0 has one: ``identity_line_item_id`` and ``identity_time_interval``.

Which amount: ``EffectiveCost`` where the file has it (FOCUS's amortized cost,
what chargeback uses: upfront purchases spread over the usage they cover), else
``BilledCost``; ``line_item_unblended_cost`` for CUR. A bad row is a problem
``FILE:ROW: what is wrong`` (the header is row 1, as in a spreadsheet) and is
skipped; the reader never guesses a value.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb

from archipel.core import MAX_AMOUNT, InputError, Money
from archipel.ledger._entry import DECIMALS, Entry, split_fixed
from archipel.ledger._ingest import IngestReport, MalformedUsageError
from archipel.ledger._store import Added, Ledger
from archipel.ledger._tables import KEY_LENGTH, NAME_LENGTH
from archipel.ledger._usage import Countries, UsageProblem

CUR_SOURCE = "cur"

#: a provider as FOCUS files name it -> the provider registry's id
PROVIDER_ALIASES: Mapping[str, str] = {
    "aws": "aws",
    "amazon": "aws",
    "amazon web services": "aws",
    "microsoft": "azure",
    "microsoft azure": "azure",
    "azure": "azure",
    "google": "gcp",
    "google cloud": "gcp",
    "google cloud platform": "gcp",
    "gcp": "gcp",
    "oracle": "oci",
    "oracle cloud infrastructure": "oci",
    "oci": "oci",
}

_CURRENCY = re.compile(r"[A-Z]{3}")
_SLUG = re.compile(r"[^a-z0-9]+")


class Kind(StrEnum):
    """The column set of a cost file."""

    focus = "focus"
    cur = "cur"


#: the columns a FOCUS row identity digests (those present in the file)
_FOCUS_IDENTITY = (
    "BillingAccountId", "SubAccountId", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ResourceId", "SkuPriceId", "SkuId", "RegionId",
    "PricingUnit", "CommitmentDiscountId", "ChargeDescription", "InvoiceId",
)  # fmt: skip

_FOCUS_REQUIRED = ("ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "BillingCurrency")
_CUR_REQUIRED = (
    "line_item_usage_start_date", "line_item_usage_end_date", "line_item_unblended_cost",
    "line_item_currency_code",
)  # fmt: skip


class _RowError(ValueError):
    """What is wrong with one row."""


def provider_id(name: str, known: Mapping[str, str] | None = None) -> str:
    """The registry id of a provider as a file names it (``Microsoft`` -> ``azure``).

    ``known`` maps lower-cased registry names to ids (the registry's own
    spellings); anything else becomes a lower-case slug of the name.
    """
    folded = name.strip().lower()
    if folded in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[folded]
    if known and folded in known:
        return known[folded]
    return _SLUG.sub("-", folded).strip("-") or "unknown"


def _open(path: Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A connection with the file as the view ``cost_file`` (every column as text)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open("rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    quoted = str(path).replace("'", "''")
    try:
        if parquet:
            source = f"read_parquet('{quoted}')"
        else:
            source = f"read_csv('{quoted}', header = true, all_varchar = true)"
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        columns = [str(row[0]) for row in described]
        texts = []
        for name, kind, *_ in described:
            column = '"' + str(name).replace('"', '""') + '"'
            if str(kind).startswith("TIMESTAMP"):
                texts.append(f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {column}")
            else:
                texts.append(f"CAST({column} AS VARCHAR) AS {column}")
        con.execute(f"CREATE VIEW cost_file AS SELECT {', '.join(texts)} FROM {source}")
    except duckdb.Error as exc:
        con.close()
        raise InputError(f"{path}: not a readable CSV or Parquet file ({exc})") from None
    return con, columns


def kind_of(columns: list[str]) -> Kind | None:
    """Which column set ``columns`` are, or ``None``."""
    if all(c in columns for c in _FOCUS_REQUIRED):
        return Kind.focus
    if all(c in columns for c in _CUR_REQUIRED):
        return Kind.cur
    return None


def read_cost_file(
    path: Path,
    kind: Kind,
    countries: Countries,
    *,
    known: Mapping[str, str] | None = None,
    chunk: int = 10_000,
) -> Iterator[tuple[list[Entry | UsageProblem], int]]:
    """The file's rows as entries or problems, ``chunk`` rows at a time, with rows read.

    Raises :class:`~archipel.core.InputError` when the file cannot be read at
    all or lacks the columns of ``kind`` (nothing is yielded then).
    """
    con, columns = _open(path)
    try:
        required = _FOCUS_REQUIRED if kind is Kind.focus else _CUR_REQUIRED
        missing = [c for c in required if c not in columns]
        if missing:
            flag = "--focus" if kind is Kind.focus else "--cur"
            raise InputError(
                f"{path}: not a {kind.value.upper()} file: no column "
                f"{', '.join(missing)} (give {flag} a "
                + ("FOCUS 1.0-1.3 cost and usage file)" if kind is Kind.focus else "CUR 2.0 file)")
            )
        result = con.execute("SELECT * FROM cost_file")
        name = str(path)
        seen: Counter[str] = Counter()
        row_number = 1
        convert = _focus_row if kind is Kind.focus else _cur_row
        while True:
            rows = result.fetchmany(chunk)
            if not rows:
                break
            batch: list[Entry | UsageProblem] = []
            for values in rows:
                row_number += 1
                doc = dict(zip(columns, values, strict=True))
                try:
                    batch.append(convert(doc, countries, known, seen))
                except _RowError as exc:
                    batch.append(UsageProblem(name, row_number, str(exc)))
            yield batch, row_number - 1
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    finally:
        con.close()


def _text(doc: Mapping[str, Any], key: str, *, limit: int = NAME_LENGTH) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) > limit:
        raise _RowError(f"{key}: longer than {limit} characters")
    return text


def _moment(doc: Mapping[str, Any], key: str) -> datetime:
    text = _text(doc, key)
    if text is None:
        raise _RowError(f"{key}: empty (every row has it)")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _RowError(f"{key}: {text!r:.60} is not an ISO 8601 date and time") from None
    # FOCUS times are UTC; a file that writes them without a zone means UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _decimal(doc: Mapping[str, Any], key: str, *, required: bool) -> Decimal | None:
    text = _text(doc, key)
    if text is None:
        if required:
            raise _RowError(f"{key}: empty (every row has it)")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _RowError(f"{key}: {text!r:.60} is not a decimal number") from None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise _RowError(f"{key}: expected a finite amount up to {MAX_AMOUNT:,}, got {text:.60}")
    try:
        split_fixed(value)
    except ValueError:
        raise _RowError(f"{key}: {text!r:.60} has more than {DECIMALS} decimals") from None
    return value


def _count(doc: Mapping[str, Any], key: str) -> int:
    value = _decimal(doc, key, required=False)
    if value is None:
        return 0
    if value < 0 or value != value.to_integral_value():
        raise _RowError(f"{key}: expected a whole number of at least 0, got {value}")
    return int(value)


def _money(amount: Decimal, currency: str | None, key: str) -> Money:
    if currency is None or _CURRENCY.fullmatch(currency) is None:
        raise _RowError(f"{key}: expected an ISO 4217 code such as USD, got {currency!r:.60}")
    return Money(amount, currency)


def _key(prefix: str, identity: tuple[Any, ...], seen: Counter[str]) -> str:
    digest = hashlib.blake2b(repr(identity).encode(), digest_size=12).hexdigest()
    key = f"{prefix}/{digest}"
    seen[key] += 1
    return key if seen[key] == 1 else f"{key}#{seen[key]}"


def _focus_row(
    doc: Mapping[str, Any],
    countries: Countries,
    known: Mapping[str, str] | None,
    seen: Counter[str],
) -> Entry:
    start, end = _moment(doc, "ChargePeriodStart"), _moment(doc, "ChargePeriodEnd")
    if end < start:
        raise _RowError("ChargePeriodEnd: before ChargePeriodStart")
    amount = _decimal(doc, "EffectiveCost", required=False)
    if amount is None:
        amount = _decimal(doc, "BilledCost", required=True)
    assert amount is not None
    cost = _money(amount, _text(doc, "BillingCurrency"), "BillingCurrency")
    named = (
        _text(doc, "ServiceProviderName") or _text(doc, "ProviderName") or _text(doc, "Provider")
    )
    if named is None:
        raise _RowError("ServiceProviderName (ProviderName before 1.3): empty")
    provider = provider_id(named, known)
    region = _text(doc, "RegionId") or _text(doc, "Region")
    tenant = _text(doc, "SubAccountId") or _text(doc, "BillingAccountId")
    if tenant is None:
        raise _RowError("SubAccountId and BillingAccountId: both empty (the tenant)")
    identity = tuple(doc.get(c) for c in _FOCUS_IDENTITY)
    return Entry(
        source=f"focus:{provider}",
        key=_key(start.strftime("%Y-%m-%dT%H:%M:%SZ"), identity, seen),
        start=start,
        end=end,
        tenant=tenant,
        cost=cost,
        workload=_text(doc, "ResourceId") or _text(doc, "ResourceID"),
        model=_text(doc, "x_Model"),
        provider=provider,
        region=region,
        country=None if region is None else countries.get((provider, region)),
        data_class=_text(doc, "x_DataClass"),
        gpu_hours=_decimal(doc, "x_GpuHours", required=False) or Decimal(0),
        input_tokens=_count(doc, "x_InputTokens"),
        output_tokens=_count(doc, "x_OutputTokens"),
    )


def _cur_row(
    doc: Mapping[str, Any],
    countries: Countries,
    known: Mapping[str, str] | None,
    seen: Counter[str],
) -> Entry:
    start = _moment(doc, "line_item_usage_start_date")
    end = _moment(doc, "line_item_usage_end_date")
    if end < start:
        raise _RowError("line_item_usage_end_date: before line_item_usage_start_date")
    amount = _decimal(doc, "line_item_unblended_cost", required=True)
    assert amount is not None
    cost = _money(amount, _text(doc, "line_item_currency_code"), "line_item_currency_code")
    region = _text(doc, "product_region_code") or _text(doc, "product_region")
    tenant = _text(doc, "line_item_usage_account_id") or _text(doc, "bill_payer_account_id")
    if tenant is None:
        raise _RowError("line_item_usage_account_id: empty (the tenant)")
    line_item = _text(doc, "identity_line_item_id", limit=KEY_LENGTH)
    interval = _text(doc, "identity_time_interval", limit=KEY_LENGTH) or ""
    if line_item is not None and len(line_item) + len(interval) < KEY_LENGTH:
        key = f"{line_item}/{interval}" if interval else line_item
    else:
        identity = tuple(sorted((k, str(v)) for k, v in doc.items() if v is not None))
        key = _key(start.strftime("%Y-%m-%dT%H:%M:%SZ"), identity, seen)
    return Entry(
        source=CUR_SOURCE,
        key=key,
        start=start,
        end=end,
        tenant=tenant,
        cost=cost,
        workload=_text(doc, "line_item_resource_id"),
        provider="aws",
        region=region,
        country=None if region is None else countries.get(("aws", region)),
    )


@dataclass(frozen=True, slots=True)
class CostFile:
    """A cost file to ingest: where it is and which column set it has."""

    path: Path
    kind: Kind


def ingest_cost_file(
    ledger: Ledger,
    source: CostFile,
    countries: Countries,
    *,
    known: Mapping[str, str] | None = None,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Add a cost file's rows to ``ledger``, one transaction per chunk; ``on_progress(rows)``.

    With ``strict`` the whole file is read first and its first bad row refuses
    it (nothing is written), as ``--strict`` does for usage logs.
    """
    path, kind = source.path, source.kind
    if strict:
        for chunk, _ in read_cost_file(path, kind, countries, known=known):
            for item in chunk:
                if isinstance(item, UsageProblem):
                    raise MalformedUsageError(item)
    added = Added()
    problems: list[UsageProblem] = []
    rows = 0
    for chunk, done in read_cost_file(path, kind, countries, known=known):
        good = [item for item in chunk if isinstance(item, Entry)]
        problems += [item for item in chunk if isinstance(item, UsageProblem)]
        rows = done
        with ledger.transaction() as connection:
            added += ledger.add(connection, good)
        if on_progress is not None:
            on_progress(done)
    return IngestReport(str(path), rows, added, tuple(problems))
