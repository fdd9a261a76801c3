"""Money as exact decimals with a currency, and the fixed-point form used in arrays.

Prices inside the offer snapshot are stored as integer *nano-units* (1e-9 of the
currency unit) so that filtering and ranking stay vectorised without ever
becoming floats; they turn back into :class:`decimal.Decimal` at the edge.

Every amount that enters (a file, an API body, a flag) is an :data:`Amount`: a
finite :class:`~decimal.Decimal` with at most nine decimals. :func:`to_nano` is
the one conversion into nano-units. An amount a person wrote converts exactly or
is refused; only a computed amount (a currency conversion, a live source quoting
more than nine decimals) is rounded, half-even, and only when asked to be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

NANO = 1_000_000_000
MISSING = -1  # sentinel for "no price" in nano-unit arrays
#: the most any amount may be at the edge (a price per hour or per million tokens, a
#: commitment): a sane bound that keeps every amount and its sums far inside the int64
#: nano-unit columns, which end near 9.2e9 units
MAX_AMOUNT = 1_000_000_000
#: the most a commitment may be. Committed-spend contracts run to hundreds of billions
#: (one buyer's multi-year contracts: $38B, $250B, $300B); they are kept and summed as
#: Decimals, never in the int64 nano-unit columns, so this is a sanity bound only
MAX_COMMITMENT = 10**13
_INT64 = 2**63 - 1
#: digits a double keeps exactly through text: a plain JSON or YAML number with more is
#: no longer the number that was written
_FLOAT_DIGITS = 15
#: decimals a cross rate keeps (one currency into another through a third)
RATE_DECIMALS = 12


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


def _finer_than_nano(amount: Decimal) -> ValueError:
    """The refusal of an amount a person wrote with more decimals than are kept."""
    return ValueError(
        f"{amount:f} has more than 9 decimals, finer than the nano-unit (1e-9) that "
        "amounts are kept in: round it to at most 9 decimals"
    )


def to_nano(amount: Decimal | int, *, round_half_even: bool = False) -> int:
    """``amount`` in integer nano-units: the one conversion, in exact integer arithmetic.

    Without ``round_half_even``, an amount with more than nine decimals is refused
    with a ``ValueError`` (never truncated, never rounded): the rule for every
    amount a person writes. With it, the amount is rounded half-even to the
    nearest nano-unit: for computed amounts only (a currency conversion, a live
    source quoting ten decimals). Floats are refused with a ``TypeError``.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"money must be a Decimal or an int, never {type(amount).__name__}")
    amount = Decimal(amount)
    if not amount.is_finite():
        raise ValueError(f"{amount} is not a finite amount")
    sign, digit_tuple, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    significant = digits.rstrip("0")
    if not significant:
        return 0
    shift = exponent + len(digits) - len(significant) + 9  # nano = significant * 10**shift
    if shift + len(significant) > 19:  # at least 1e19 nano-units: no int64 holds it
        raise ValueError(f"{amount} is too large an amount (at most {_INT64 // NANO:,} units)")
    nano: int
    if shift >= 0:
        nano = int(significant) * 10**shift
    elif not round_half_even:
        raise _finer_than_nano(amount)
    elif -shift > len(significant):  # below a tenth of a nano-unit: rounds to zero
        nano = 0
    else:
        nano, rest = divmod(int(significant), 10**-shift)
        half = 5 * 10 ** (-shift - 1)
        if rest > half or (rest == half and nano % 2 == 1):
            nano += 1
    if nano > _INT64:
        raise ValueError(f"{amount} is too large an amount (at most {_INT64 // NANO:,} units)")
    return -nano if sign else nano


def decimal_of(value: object) -> object:
    """A plain JSON or YAML number (a float) as the exact decimal that was written.

    A float becomes its shortest decimal text (``0.1`` is ``Decimal("0.1")``,
    never 0.1000000000000000055...). One whose text needs more than 15
    significant digits is refused: a double does not hold such a number as
    written, so it must come quoted. Anything else is returned as it is, for the
    Decimal field to judge.
    """
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    exact = Decimal(repr(value))
    if len(exact.as_tuple().digits) > _FLOAT_DIGITS:
        raise ValueError(
            f"{value!r} has more digits than a plain number keeps exactly (15): "
            f'write it as a quoted string, e.g. "{exact}", or with fewer digits'
        )
    return exact


def _nano_exact(value: Decimal) -> Decimal:
    to_nano(value)  # refuses more than nine decimals, naming the fix
    return value


#: an amount of money at the edge (a price per hour or per million tokens, a commitment):
#: an exact, finite Decimal from 0 to :data:`MAX_AMOUNT` with at most nine decimals.
#: Quoted text keeps every digit; a plain number is read as :func:`decimal_of` says.
Amount = Annotated[
    Decimal,
    Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False),
    BeforeValidator(decimal_of),
    AfterValidator(_nano_exact),
]
#: an :data:`Amount` above zero (a price cap)
PositiveAmount = Annotated[
    Decimal,
    Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False),
    BeforeValidator(decimal_of),
    AfterValidator(_nano_exact),
]


def _nine_decimals(value: Decimal) -> Decimal:
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        raise _finer_than_nano(value)
    return value


#: a commitment's size, or what was spent of it: like an :data:`Amount` (exact, at most
#: nine decimals, a plain number read as written) up to :data:`MAX_COMMITMENT`
CommitmentAmount = Annotated[
    Decimal,
    Field(ge=0, le=MAX_COMMITMENT, allow_inf_nan=False),
    BeforeValidator(decimal_of),
    AfterValidator(_nine_decimals),
]
#: a :data:`CommitmentAmount` above zero (the size of a commitment)
PositiveCommitmentAmount = Annotated[
    Decimal,
    Field(gt=0, le=MAX_COMMITMENT, allow_inf_nan=False),
    BeforeValidator(decimal_of),
    AfterValidator(_nine_decimals),
]


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
    try:
        return to_nano(value)
    except ValueError as exc:
        raise ValueError(f"price {text!r}: {exc}") from None


def nano_to_decimal(nano: int) -> Decimal:
    """Exact decimal value of a nano-unit amount, normalised (no trailing zeros)."""
    value = (Decimal(int(nano)) / NANO).normalize()
    # normalize() turns 100 into 1E+2; keep a plain exponent for display
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def cross_rate(rate_from: Decimal, rate_to: Decimal) -> Decimal:
    """Units of B per unit of A, from the rates of A and of B into one common currency.

    The quotient is rounded half-even to :data:`RATE_DECIMALS` decimals in exact
    rational arithmetic (the same rounding as the ECB cross rates the catalog
    refresh stores), so one pair of rates always gives one rate.
    """
    if rate_from == rate_to:
        return Decimal(1)
    scaled = round(Fraction(rate_from) / Fraction(rate_to) * 10**RATE_DECIMALS)
    return Decimal(scaled).scaleb(-RATE_DECIMALS).normalize()


def convert_nano(nano: int, rate: Decimal) -> int:
    """``nano`` nano-units of one currency in another at ``rate``, rounded half-even.

    Exact integer arithmetic: the result is the nano-unit nearest to the true
    product, whatever the number of digits of the rate.
    """
    numerator, denominator = rate.as_integer_ratio()
    quotient, rest = divmod(int(nano) * numerator, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient
