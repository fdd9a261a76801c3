"""The ledger's record: one priced use of compute, appended and never edited.

An :class:`Entry` says who used what, where, when, how much of it, and what it
cost, as an exact :class:`~archipel.core.Money`. Its identity is ``(source,
key)``: the gateway's entries are keyed by request id. A later entry with the
same identity and other content is a *correction*: it supersedes the earlier
one, which stays in the ledger as it was written. An entry with the same
identity and the same content (its :attr:`Entry.digest`) is the same record,
read twice, and is never added again.

Quantities and costs are kept in the tables as two integer columns each
(:func:`split_fixed`): whole micro-units, and the femto-units (1e-15) below
them. Both databases then sum them exactly in SQL, with no float and no
overflow for any realistic history, and the value comes back as the exact
:class:`~decimal.Decimal` that went in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from enum import StrEnum

from archipel.core import Money

#: finest fraction an amount or a quantity may have: 1e-15 (a per-token price is a price
#: per million tokens, itself at most nine decimals, divided by a million)
FEMTO = 10**15
_MICRO_IN_FEMTO = 10**9
_SCALE = Decimal(1).scaleb(-15)
DECIMALS = 15
#: a context wide enough that scaling any amount by 1e15 is exact
_WIDE = Context(prec=60)


class Dimension(StrEnum):
    """What chargeback groups entries by; the value is the CLI's spelling (``--by``)."""

    tenant = "tenant"
    provider = "provider"
    model = "model"
    data_class = "data-class"
    country = "country"
    workload = "workload"
    region = "region"
    source = "source"

    @property
    def column(self) -> str:
        """The column of the entries table that holds this dimension."""
        return self.name


@dataclass(frozen=True, slots=True)
class Entry:
    """One priced use: ``cost`` is ``None`` when the use cost nothing and had no price.

    ``start`` and ``end`` bound the period the use happened in (UTC); a
    gateway request runs from when it arrived to when it completed.
    ``workload`` is the run or service that did the work (for the gateway, the
    replica that answered). ``status`` is the outcome where the source has one
    (a gateway request's HTTP status), so successes and failures stay apart.
    ``project`` groups tenants' work for budgets; ``accelerator`` is the kind
    of GPU the work ran on (``H100``), where the source knows it.
    """

    source: str
    key: str
    start: datetime
    end: datetime
    tenant: str
    cost: Money | None
    workload: str | None = None
    model: str | None = None
    provider: str | None = None
    region: str | None = None
    country: str | None = None
    data_class: str | None = None
    status: int | None = None
    gpu_hours: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    project: str | None = None
    accelerator: str | None = None

    @property
    def digest(self) -> str:
        """A fingerprint of the whole record: equal digests, the same record."""
        return digest_of(columns(self))


#: the columns of the entries table that :func:`columns` fills, in its order
COLUMNS = (
    "source",
    "key",
    "start_us",
    "end_us",
    "tenant",
    "workload",
    "model",
    "provider",
    "region",
    "country",
    "data_class",
    "status",
    "gpu_hours_micro",
    "gpu_hours_femto",
    "input_tokens",
    "output_tokens",
    "cost_micro",
    "cost_femto",
    "currency",
    "project",
    "accelerator",
)

Columns = tuple[
    str, str, int, int, str, str | None, str | None, str | None, str | None, str | None,
    str | None, int | None, int, int, int, int, int, int, str | None, str | None, str | None,
]  # fmt: skip


def columns(entry: Entry) -> Columns:
    """The entry as the values of :data:`COLUMNS`: integers for times, money and quantities."""
    gpu_micro, gpu_femto = split_fixed(entry.gpu_hours)
    cost = entry.cost
    cost_micro, cost_femto = (0, 0) if cost is None else split_fixed(cost.amount)
    return (
        entry.source,
        entry.key,
        micros_of(entry.start),
        micros_of(entry.end),
        entry.tenant,
        entry.workload,
        entry.model,
        entry.provider,
        entry.region,
        entry.country,
        entry.data_class,
        entry.status,
        gpu_micro,
        gpu_femto,
        entry.input_tokens,
        entry.output_tokens,
        cost_micro,
        cost_femto,
        None if cost is None else cost.currency,
        entry.project,
        entry.accelerator,
    )


def digest_of(values: Columns) -> str:
    """The fingerprint of an entry's column values (what makes two records the same).

    An entry without a project and an accelerator is fingerprinted on the
    columns the ledger had before those two, so that its digest is the one an
    older ledger stored, and ingesting an old file again still adds nothing.
    """
    legacy = values[:-2] if values[-2:] == (None, None) else values
    return hashlib.blake2b(repr(legacy).encode(), digest_size=16).hexdigest()


def split_fixed(value: Decimal) -> tuple[int, int]:
    """``value`` as (whole micro-units, femto-units below them): exact, or a ``ValueError``.

    The second part is always from 0 to 999,999,999, so a sum of a billion of
    them still fits a 64-bit integer; the first is floored (negative values
    keep a non-negative remainder).
    """
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    if not value:
        return 0, 0
    scaled = value.scaleb(DECIMALS, _WIDE)
    femto = int(scaled)
    if femto != scaled:
        raise ValueError(f"{value:f} has more than {DECIMALS} decimals")
    return divmod(femto, _MICRO_IN_FEMTO)


def join_fixed(micro: int, femto: int) -> Decimal:
    """The exact decimal of ``micro`` micro-units plus ``femto`` femto-units (sums too)."""
    total = int(micro) * _MICRO_IN_FEMTO + int(femto)
    with localcontext() as ctx:
        ctx.prec = 60
        value = (Decimal(total) * _SCALE).normalize()
        # normalize() writes 100 as 1E+2: keep a plain exponent for integers
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros_of(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, integer)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment_of(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=micros)
