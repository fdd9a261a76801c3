"""What every refresh source shares: the protocols, the registry, and strict JSON helpers.

Exceptions::

    CatalogError (archipel.core)
      └── SourceError   a source answered, but not in its documented format
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from archipel.catalog._sources import OfferRow
from archipel.core import CatalogError, to_nano

if TYPE_CHECKING:  # httpx is imported where a fetch runs: ~0.1 s that `archipel plan` skips
    import httpx


class SourceError(CatalogError):
    """A price or rate source answered, but not in its documented format."""


@runtime_checkable
class PriceSource(Protocol):
    """Reads one provider's public prices; its rows replace that provider's shipped offers."""

    @property
    def name(self) -> str:
        """Stable name, used on the command line (``--source NAME``)."""
        ...

    @property
    def provider(self) -> str:
        """The provider id (``providers.yaml``) whose shipped accelerator offers it replaces."""
        ...

    def fetch(self, client: httpx.Client) -> list[OfferRow]:
        """Fetch and parse the offers; raise ``httpx.HTTPError`` or :class:`SourceError`."""
        ...


@runtime_checkable
class RateSource(Protocol):
    """Reads exchange rates into the comparison currency."""

    @property
    def name(self) -> str:
        """Stable name, used on the command line (``--source NAME``)."""
        ...

    def fetch_rates(self, client: httpx.Client, comparison_currency: str) -> dict[str, Decimal]:
        """Each currency's rate into ``comparison_currency`` (1 unit -> that many units)."""
        ...


#: the shipped offer rows, parsed on first call (only once a source has answered)
ShippedRows = Callable[[], Sequence[OfferRow]]
#: builds a source; sources that need facts their API lacks read them from the shipped rows
SourceFactory = Callable[[ShippedRows], PriceSource | RateSource]


def source_registry(*entries: tuple[str, SourceFactory]) -> dict[str, SourceFactory]:
    """An explicit name -> factory table; a duplicate name is an error."""
    table: dict[str, SourceFactory] = {}
    for name, factory in entries:
        if name in table:
            raise CatalogError(f"refresh source {name!r} is registered twice")
        table[name] = factory
    return table


def decimal_nano(value: object, where: str) -> int:
    """An exact non-negative decimal (never a float) as nano-units.

    Live sources occasionally quote more than nine decimals; nano-units are the
    catalog's resolution, so such a price is rounded half-even to 1e-9 per hour.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise SourceError(f"{where}: price {value!r} is not a decimal number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SourceError(f"{where}: price {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise SourceError(f"{where}: price {value!r} is not a finite non-negative number")
    return to_nano(amount, round_half_even=True)


def json_body(response: httpx.Response, where: str) -> Any:
    """The JSON body with every non-integer number as an exact :class:`Decimal`."""
    try:
        return json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise SourceError(f"{where}: the answer is not JSON: {exc}") from exc


def as_mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SourceError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def as_list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value


def as_number(value: object) -> float | None:
    """A vCPU or memory figure (not money, so a float is fine), ``None`` when absent."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class ShippedSpec:
    """What the shipped catalog knows about an instance type that a price API does not state."""

    accelerator: str
    accelerator_count: float
    gpu_memory_mib: int
    vcpus: float | None
    memory_gib: float | None


def shipped_specs(rows: Iterable[OfferRow], provider: str) -> dict[str, ShippedSpec]:
    """Instance type -> accelerators and size, from the shipped accelerator rows of ``provider``."""
    specs: dict[str, ShippedSpec] = {}
    for r in rows:
        if r.provider == provider and r.accelerator and r.instance_type not in specs:
            specs[r.instance_type] = ShippedSpec(
                r.accelerator, r.accelerator_count, r.gpu_memory_mib, r.vcpus, r.memory_gib
            )
    return specs
