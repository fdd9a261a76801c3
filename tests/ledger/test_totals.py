"""Chargeback sums: exact whatever the order and batching, per group, converted by hand."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from archipel.core import InputError, Money
from archipel.ledger import Dimension, Entry, Ledger, Total, converted, ingest_usage, totals

from .conftest import COUNTRIES, usage, write_usage

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# an amount with up to 15 decimals and up to 9 whole digits, as the gateway and sites write them
amounts = st.builds(
    lambda units, scale: Decimal(units).scaleb(-scale),
    st.integers(min_value=0, max_value=10**24),
    st.integers(min_value=0, max_value=15),
).filter(lambda d: d <= 10**9)


def _entry(n: int, amount: Decimal, currency: str) -> Entry:
    return Entry("gateway", f"r{n}", T0, T0, "acme", Money(amount, currency), input_tokens=n)


@settings(max_examples=examples(25))
@given(
    costs=st.lists(st.tuples(amounts, st.sampled_from(["EUR", "USD"])), min_size=1, max_size=40),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=6),
    lookup=st.integers(min_value=1, max_value=50),
)
def test_sums_are_exact_in_any_order_and_any_batching(
    costs: list[tuple[Decimal, str]], order: object, cuts: list[int], lookup: int
) -> None:
    batch = [_entry(n, amount, currency) for n, (amount, currency) in enumerate(costs)]
    order.shuffle(batch)  # type: ignore[attr-defined]
    expected: dict[str, Decimal] = {}
    with localcontext() as ctx:
        ctx.prec = 100  # a sum no float and no rounding touches
        for amount, currency in costs:
            expected[currency] = expected.get(currency, Decimal(0)) + amount
    with tempfile.TemporaryDirectory() as folder:
        # ``lookup``: keys per look-up query, so that a batch is also cut inside ``add``
        ledger = Ledger(f"sqlite:///{Path(folder) / 'l.db'}", lookup=lookup)
        ledger.migrate()
        edges = sorted({0, len(batch), *(c for c in cuts if c < len(batch))})
        with ledger.transaction() as connection:
            for start, end in itertools.pairwise(edges):
                ledger.add(connection, batch[start:end])
            again = ledger.add(connection, list(reversed(batch)))  # all of it, once more
        got = {t.currency: t.cost for t in totals(ledger, Dimension.source)}
        ledger.close()
    assert again.new == again.corrections == 0
    assert got == expected


def test_totals_per_group_and_currency_with_tokens_and_counts(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.migrate()
    lines = [
        usage("1", tenant="acme", cost="0.25", currency="EUR", input_tokens=10, output_tokens=1),
        usage("2", tenant="acme", cost="0.50", currency="EUR", input_tokens=20, output_tokens=2),
        usage("3", tenant="acme", cost="1.10", currency="USD", input_tokens=30, output_tokens=3),
        usage("4", tenant="beta", cost="0.000000000000001", currency="USD", input_tokens=1),
        {
            **usage("5", tenant="beta", status=503, replica=None, provider=None, region=None),
            "cost": "0",
            "currency": "",
        },
    ]
    ingest_usage(ledger, write_usage(tmp_path / "u.jsonl", *lines), COUNTRIES)
    got = totals(ledger, Dimension.tenant)
    assert got == [
        Total("acme", "EUR", Decimal("0.75"), 2, Decimal(0), 30, 3),
        Total("acme", "USD", Decimal("1.10"), 1, Decimal(0), 30, 3),
        Total("beta", None, Decimal(0), 1, Decimal(0), 100, 20),
        Total("beta", "USD", Decimal("1E-15"), 1, Decimal(0), 1, 20),
    ]
    by_country = {(t.group, t.currency): t.entries for t in totals(ledger, Dimension.country)}
    assert by_country == {("FR", "EUR"): 2, ("FR", "USD"): 2, (None, None): 1}


# EUR 1 = USD 1.1665, so USD 1 = EUR 0.857265323618 (1 / 1.1665 to 12 decimals, half-even)
RATES_INTO_EUR = {"EUR": Decimal(1), "USD": Decimal("0.857265323618")}


def test_converted_sums_each_currency_at_its_rate_and_rounds_once_to_the_nano_unit() -> None:
    parts = [
        Total("acme", "EUR", Decimal("0.75"), 2, Decimal(0), 30, 3),
        Total("acme", "USD", Decimal("1.10"), 1, Decimal(0), 30, 3),
        Total("beta", None, Decimal(0), 1, Decimal(0), 100, 20),
    ]
    acme, beta = converted(parts, "EUR", RATES_INTO_EUR)
    # 0.75 + 1.10 x 0.857265323618 = 0.75 + 0.9429918559798 = 1.6929918559798 -> 1.692991856
    assert acme.cost == Money(Decimal("1.692991856"), "EUR")
    assert acme.parts == tuple(parts[:2])
    assert (beta.group, beta.cost) == ("beta", Money(Decimal(0), "EUR"))


def test_a_currency_without_a_rate_is_bad_input() -> None:
    parts = [Total("acme", "CHF", Decimal(1), 1, Decimal(0), 0, 0)]
    with pytest.raises(InputError, match=r"^--currency: no exchange rate from CHF .* into EUR"):
        converted(parts, "EUR", RATES_INTO_EUR)
