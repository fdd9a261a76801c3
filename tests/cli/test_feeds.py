"""Metering ended attempts into the ledger: the price of an attempt, and a move that
neither loses nor doubles an attempt, whatever stops it half-way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archipel.backends import AttemptState
from archipel.cli._feeds import ending_entry, hours_between, move_endings
from archipel.controlplane import AttemptEnding, AttemptTerms, Store
from archipel.core import Money
from archipel.ledger import Ledger

START = datetime(2026, 3, 1, 8, 0)  # naive UTC, as the store keeps times
H100x8 = AttemptTerms("aws", "us-east-1", "US", "H100", Decimal(8), Decimal("98.32"), "USD")


def _ending(hours: timedelta, terms: AttemptTerms | None = H100x8) -> AttemptEnding:
    spec = (
        '{"name": "pretrain", "kind": "training", "resources": {"accelerators": "H100:8"}, '
        '"data": {"class": "public"}, "run": {"command": ["true"]}}'
    )
    return AttemptEnding(
        "r-1-a1", "r-1", "research", "pretrain", spec, "virginia", AttemptState.SUCCEEDED,
        START, START + hours, terms,
    )  # fmt: skip


def _nano(value: Fraction) -> Decimal:
    scaled = value * 10**9
    whole = (Decimal(scaled.numerator) / Decimal(scaled.denominator)).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN
    )
    return whole.scaleb(-9)


@pytest.mark.parametrize(
    ("name", "span", "gpu_hours", "cost"),
    [
        # 8 GPUs at $98.32 an hour, by hand
        ("a whole hour", timedelta(hours=1), "8", "98.32"),
        ("a day and a half", timedelta(hours=36), "288", "3539.52"),
        ("twenty minutes", timedelta(minutes=20), "2.666666667", "32.773333333"),
        ("one microsecond, rounded to nano-units", timedelta(microseconds=1), "2E-9", "2.7E-8"),
    ],
)
def test_an_attempt_is_priced_at_its_terms_for_its_hours(
    name: str, span: timedelta, gpu_hours: str, cost: str
) -> None:
    entry = ending_entry(_ending(span))
    assert entry.gpu_hours == Decimal(gpu_hours)
    assert entry.cost == Money(Decimal(cost), "USD")
    assert (entry.source, entry.key, entry.tenant, entry.workload) == (
        "runs", "r-1-a1", "research", "pretrain"
    )  # fmt: skip
    assert (entry.provider, entry.region, entry.country, entry.data_class) == (
        "aws", "us-east-1", "US", "public"
    )  # fmt: skip
    assert entry.start == START.replace(tzinfo=UTC) and entry.end - entry.start == span


def test_an_attempt_placed_before_terms_were_kept_has_no_price() -> None:
    entry = ending_entry(_ending(timedelta(hours=2), terms=None))
    assert entry.cost is None and entry.gpu_hours == 0 and entry.provider is None


@given(
    micros=st.integers(min_value=0, max_value=10**13),
    price=st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False),
)
def test_hours_between_is_the_exact_product_rounded_once(micros: int, price: Decimal) -> None:
    got = hours_between(START, START + timedelta(microseconds=micros), price)
    assert got == _nano(Fraction(price) * Fraction(micros, 3_600_000_000))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    s.migrate()
    yield s
    s.close()


def _ended_attempts(store: Store, n: int) -> list[str]:
    """``n`` runs whose one attempt on paris ended, straight through the store."""
    from archipel.controlplane import AttemptUpdate, NewAttempt
    from archipel.core import RunState, parse_workload

    spec = {"name": "job", "kind": "training", "resources": {"accelerators": "cpu:1"},
            "run": {"command": ["true"]}}  # fmt: skip
    ids = []
    for _ in range(n):
        run = store.submit("acme", parse_workload(spec))
        placing = store.transition(run, RunState.PLACING)
        assert placing is not None
        attempt = NewAttempt(f"{run.id}-a1", 1, "paris", H100x8)
        assert store.transition(placing, RunState.LAUNCHING, attempt=attempt) is not None
        store.update_attempt(AttemptUpdate(attempt.id, AttemptState.SUCCEEDED))
        ids.append(attempt.id)
    return ids


class _CrashError(Exception):
    pass


def test_a_move_stopped_half_way_loses_nothing_and_doubles_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _ended_attempts(store, 5)
    ledger = Ledger(store.url)
    ledger.migrate()
    try:
        # the ledger has the batch, then the process dies before the outbox is cleared
        def crash(_ids: object) -> None:
            raise _CrashError

        with monkeypatch.context() as m:
            m.setattr(store, "forget_endings", crash)
            with pytest.raises(_CrashError):
                move_endings(store, ledger, batch=2)
        assert len(store.endings()) == 5  # nothing left the outbox
        assert move_endings(store, ledger, batch=2) == 5  # moved again, after a restart
        assert move_endings(store, ledger) == 0
        keys = sorted(e.key for e in ledger.current())
        assert keys == sorted(ids)  # each once
    finally:
        ledger.close()
