"""Chargeback: the current entries summed per group, exactly, per currency or converted.

Sums are taken by DuckDB over the ``entries`` relation of
:meth:`Ledger.frame` (both stores), in ``DECIMAL(38, 15)``: no float, no
rounding, and they come back as exact decimals. Conversion into one currency multiplies each
currency's exact sum by its rate (the catalog's, the same that ``archipel plan
--currency`` uses) and rounds the group's total half-even to the nano-unit,
once: a computed amount, as docs/architecture.md (Money) says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import duckdb

from archipel.core import InputError, Money
from archipel.ledger._entry import Dimension
from archipel.ledger._store import Ledger

_NANO = Decimal(1).scaleb(-9)


@dataclass(frozen=True, slots=True)
class Total:
    """The current entries of one group in one currency (``None``: entries that cost nothing)."""

    group: str | None
    currency: str | None
    cost: Decimal
    entries: int
    gpu_hours: Decimal
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Converted:
    """One group's spend in one currency, with the per-currency totals it was made from."""

    group: str | None
    cost: Money
    parts: tuple[Total, ...]


def totals(ledger: Ledger, by: Dimension) -> list[Total]:
    """Sums of the current entries per ``by`` and currency, ordered by group then currency."""
    connection = ledger.frame()
    try:
        return totals_of(connection, by)
    finally:
        connection.close()


def totals_of(connection: duckdb.DuckDBPyConnection, by: Dimension) -> list[Total]:
    """:func:`totals` over the ``entries`` relation of ``connection`` (see ``Ledger.frame``)."""
    rows = connection.execute(
        f'SELECT "{by.column}", currency, coalesce(sum(cost), 0), count(*), '
        "coalesce(sum(gpu_hours), 0), coalesce(sum(input_tokens), 0), "
        "coalesce(sum(output_tokens), 0) "
        f'FROM entries GROUP BY "{by.column}", currency'
    ).fetchall()
    return sorted((_total(row) for row in rows), key=_order)


def _exact(value: Decimal | int) -> Decimal:
    """A sum as the ledger writes amounts: no trailing zeros, integers without exponent."""
    number = Decimal(value).normalize()
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number


def _total(row: Sequence[Any]) -> Total:
    group, currency, cost, count, gpu_hours, tin, tout = row
    return Total(
        group=group,
        currency=currency,
        cost=_exact(cost),
        entries=int(count),
        gpu_hours=_exact(gpu_hours),
        input_tokens=int(tin),
        output_tokens=int(tout),
    )


def _order(total: Total) -> tuple[bool, str, str]:
    return (total.group is None, total.group or "", total.currency or "")


def converted(
    parts: Iterable[Total], currency: str, rates: Mapping[str, Decimal], where: str = "--currency"
) -> list[Converted]:
    """Each group's totals in ``currency``: ``rates`` gives one unit of each currency in it.

    A currency of the entries without a rate is an :class:`InputError` naming
    ``where``. Entries that cost nothing (no currency) add nothing.
    """
    groups: dict[str | None, list[Total]] = {}
    for part in parts:
        groups.setdefault(part.group, []).append(part)
    out = []
    for group, members in groups.items():
        with localcontext() as ctx:
            ctx.prec = 80
            exact = sum(
                (p.cost * _rate(p.currency, currency, rates, where) for p in members), Decimal(0)
            )
            amount = exact.quantize(_NANO)
        out.append(Converted(group, Money(amount, currency), tuple(members)))
    return out


def _rate(code: str | None, target: str, rates: Mapping[str, Decimal], where: str) -> Decimal:
    if code is None or code == target:
        return Decimal(0) if code is None else Decimal(1)
    rate = rates.get(code)
    if rate is None:
        known = ", ".join(sorted(rates))
        raise InputError(
            f"{where}: no exchange rate from {code} (a currency of the ledger's entries) into "
            f"{target}; the catalog knows {known} (`archipel catalog refresh` fetches the ECB's)"
        )
    return rate
