"""The ECB's daily euro reference rates, as rates into the comparison currency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from archipel.catalog._refresh_base import SourceError

if TYPE_CHECKING:
    import httpx

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
_RATE_QUANTUM = Decimal("1e-12")


def parse_ecb(xml: bytes | str) -> tuple[str, dict[str, Decimal]]:
    """The reference day and each currency's units per euro (``EUR`` itself is 1)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise SourceError(f"ECB reference rates: not XML: {exc}") from exc
    day, per_eur = "", {"EUR": Decimal(1)}
    for cube in root.iter():
        if cube.tag.rsplit("}", 1)[-1] != "Cube":  # namespaces vary; the element name does not
            continue
        day = cube.get("time") or day
        code, rate = cube.get("currency"), cube.get("rate")
        if code is None or rate is None:
            continue
        try:
            value = Decimal(rate)
        except InvalidOperation:
            raise SourceError(f"ECB reference rates: {code} rate {rate!r} is not decimal") from None
        if not value.is_finite() or value <= 0:
            raise SourceError(f"ECB reference rates: {code} rate {rate!r} is not positive")
        per_eur[code.strip().upper()] = value
    if len(per_eur) == 1:
        raise SourceError("ECB reference rates: the document holds no rate")
    return day, per_eur


def _exact_rate(value: Decimal) -> Decimal:
    """A rate rounded half-even to 12 decimals, without trailing zeros."""
    rounded = value.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
    return rounded.quantize(Decimal(1)) if rounded == rounded.to_integral_value() else rounded


def rates_into(per_eur: Mapping[str, Decimal], comparison_currency: str) -> dict[str, Decimal]:
    """Cross rates into ``comparison_currency``: rate(X) = units of it per unit of X.

    With USD as the comparison currency, rate(EUR) is the ECB's USD rate and
    rate(GBP) = USD-per-EUR / GBP-per-EUR.
    """
    target = per_eur.get(comparison_currency)
    if target is None:
        raise SourceError(f"ECB reference rates: no rate for {comparison_currency}")
    return {code: _exact_rate(target / units) for code, units in sorted(per_eur.items())}


@dataclass(frozen=True)
class EcbReferenceRates:
    """The ECB's daily euro reference rates (published around 16:00 CET on working days)."""

    name: str = "ecb"

    def fetch_rates(self, client: httpx.Client, comparison_currency: str) -> dict[str, Decimal]:
        response = client.get(ECB_DAILY_URL, follow_redirects=True)
        response.raise_for_status()
        return rates_into(parse_ecb(response.content)[1], comparison_currency)
