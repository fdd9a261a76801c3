"""Money as exact decimals with a currency, and the fixed-point form used in arrays.

Prices inside the offer snapshot are stored as integer *nano-units* (1e-9 of the
currency unit) so that filtering and ranking stay vectorised without ever
becoming floats; they turn back into :class:`decimal.Decimal` at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

NANO = 1_000_000_000
MISSING = -1  # sentinel for "no price" in nano-unit arrays


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal, never a float")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")

    def __str__(self) -> str:
        return f"{self.amount:,.2f} {self.currency}"


def parse_price(text: str) -> int:
    """Parse a decimal price string into nano-units; empty text is :data:`MISSING`.

    Raises ``ValueError`` for negative values, non-numbers or more than nine
    decimals (which nano-units cannot hold exactly).
    """
    text = text.strip()
    if not text:
        return MISSING
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal price: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"price must be a finite non-negative decimal: {text!r}")
    scaled = value * NANO
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price has more than 9 decimals: {text!r}")
    return int(scaled)


def nano_to_decimal(nano: int) -> Decimal:
    """Exact decimal value of a nano-unit amount, normalised (no trailing zeros)."""
    value = (Decimal(int(nano)) / NANO).normalize()
    # normalize() turns 100 into 1E+2; keep a plain exponent for display
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
