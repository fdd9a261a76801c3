"""Reading the gateway's usage log: one JSON object a line, one :class:`Entry` each.

The format is the gateway's (``docs/gateway.md``, Metering): ``request_id``,
``ts`` (completion, seconds since the epoch), ``latency_ms``, ``tenant``,
``data_class``, ``model``, ``status``, ``replica``, ``provider``, ``region``,
``input_tokens``, ``output_tokens``, ``cost`` (an exact decimal string) and
``currency`` (empty when no replica answered, and then the cost is zero).
Other fields are read past, so a newer gateway's lines still load. The
request id is the entry's key. The country comes from the catalog's region
table, passed in as ``countries``.

A line that is not such an object is a :class:`UsageProblem` naming the file,
the line and what is wrong; the reader never guesses a value.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from archipel.core import MAX_AMOUNT, Money
from archipel.ledger._entry import DECIMALS, Entry, moment_of
from archipel.ledger._tables import KEY_LENGTH, NAME_LENGTH

SOURCE = "gateway"

_CURRENCY = re.compile(r"[A-Z]{3}")

Countries = Mapping[tuple[str, str], str | None]


@dataclass(frozen=True, slots=True)
class UsageProblem:
    """A line that is not a usage record: where it is and what is wrong with it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


#: 9999-12-31T23:59:59 UTC in microseconds since the epoch: the last moment a date holds
_LAST_US = 253_402_300_799 * 1_000_000


class _FieldError(ValueError):
    """What is wrong with one field of one line."""


def _json_loads() -> Callable[[bytes], Any]:
    try:  # the gateway's optional fast JSON library, when installed
        return importlib.import_module("orjson").loads  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - depends on the environment
        return json.loads


_loads = _json_loads()


def read_usage(
    path: Path, countries: Countries, *, chunk: int = 10_000
) -> Iterator[tuple[list[Entry | UsageProblem], int]]:
    """The file's lines as entries or problems, ``chunk`` lines at a time, with bytes read.

    Blank lines are skipped. A line cut short (a gateway stopped mid-write) is a
    problem like any other malformed line.
    """
    name = str(path)
    done = 0
    batch: list[Entry | UsageProblem] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            done += len(raw)
            if raw.strip():
                batch.append(parse_line(raw, name, number, countries))
            if len(batch) >= chunk:
                yield batch, done
                batch = []
    yield batch, done


def parse_line(raw: bytes, name: str, number: int, countries: Countries) -> Entry | UsageProblem:
    """Line ``number`` of the file ``name`` as an entry, or the problem with it."""
    try:
        doc = _loads(raw)
    except ValueError:
        return UsageProblem(name, number, "not a JSON object (a line cut short or edited?)")
    if not isinstance(doc, dict):
        return UsageProblem(name, number, "not a JSON object: one usage record a line")
    try:
        return usage_entry(doc, countries)
    except _FieldError as exc:
        return UsageProblem(name, number, str(exc))


def usage_entry(doc: Mapping[str, Any], countries: Countries) -> Entry:
    """One usage record as an entry; raises ``ValueError`` naming the field that is wrong."""
    end_us = round(_number(doc, "ts") * 1_000_000)
    start_us = end_us - round(_number(doc, "latency_ms") * 1_000)
    if end_us > _LAST_US:  # a time in milliseconds, say: no date holds it
        raise _FieldError(f"ts: expected seconds since 1970, got {doc['ts']!r}")
    if start_us < 0:
        raise _FieldError("latency_ms: the request would have started before 1970")
    provider = _name(doc, "provider", optional=True)
    region = _name(doc, "region", optional=True)
    country = None if provider is None or region is None else countries.get((provider, region))
    return Entry(
        source=SOURCE,
        key=_text(doc, "request_id", KEY_LENGTH),
        start=moment_of(start_us),
        end=moment_of(end_us),
        tenant=_text(doc, "tenant", NAME_LENGTH),
        cost=_cost(doc),
        workload=_name(doc, "replica", optional=True),
        model=_text(doc, "model", NAME_LENGTH),
        provider=provider,
        region=region,
        country=country,
        data_class=_text(doc, "data_class", NAME_LENGTH),
        status=_count(doc, "status"),
        input_tokens=_count(doc, "input_tokens"),
        output_tokens=_count(doc, "output_tokens"),
    )


_MISSING = object()


def _field(doc: Mapping[str, Any], key: str) -> Any:
    value = doc.get(key, _MISSING)
    if value is _MISSING:
        raise _FieldError(f"{key}: missing (every usage record has it)")
    return value


def _text(doc: Mapping[str, Any], key: str, limit: int) -> str:
    value = _field(doc, key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _FieldError(f"{key}: expected text of 1 to {limit} characters, got {value!r:.60}")
    return value


def _name(doc: Mapping[str, Any], key: str, *, optional: bool) -> str | None:
    value = _field(doc, key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > NAME_LENGTH:
        raise _FieldError(f"{key}: expected text or null, got {value!r:.60}")
    return value


def _number(doc: Mapping[str, Any], key: str) -> float:
    value = _field(doc, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(f"{key}: expected a number, got {value!r:.60}")
    if not math.isfinite(value) or value < 0:
        raise _FieldError(f"{key}: expected a finite number of at least 0, got {value!r}")
    return float(value)


def _count(doc: Mapping[str, Any], key: str) -> int:
    value = _field(doc, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _FieldError(f"{key}: expected a whole number of at least 0, got {value!r:.60}")
    return value


def _finer(amount: Decimal) -> bool:
    """More than 15 decimals once trailing zeros are dropped."""
    exponent = amount.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent < -DECIMALS


def _cost(doc: Mapping[str, Any]) -> Money | None:
    text, currency = _field(doc, "cost"), _field(doc, "currency")
    if not isinstance(text, str):
        raise _FieldError(f'cost: expected a decimal string such as "0.0042", got {text!r:.60}')
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise _FieldError(f"cost: {text!r:.60} is not a decimal number") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_AMOUNT:
        raise _FieldError(
            f"cost: expected a finite amount from 0 to {MAX_AMOUNT:,}, got {text!r:.60}"
        )
    exponent = amount.as_tuple().exponent  # written with at most 15 decimals: the usual case
    if isinstance(exponent, int) and exponent < -DECIMALS and _finer(amount):
        raise _FieldError(f"cost: {text!r:.60} has more than {DECIMALS} decimals")
    if currency == "":
        if amount:
            raise _FieldError(f"currency: empty, but the cost is {text}: name its ISO 4217 code")
        return None
    if not isinstance(currency, str) or _CURRENCY.fullmatch(currency) is None:
        raise _FieldError(f"currency: expected an ISO 4217 code such as USD, got {currency!r:.60}")
    return Money(amount, currency)
