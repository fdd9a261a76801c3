"""What every command shares: exit statuses, error handling, the snapshot, the policy, flags."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from archipel.cli._config import MAX_FILE_MB, read_yaml_documents, snapshot_path
from archipel.core import ArchipelError, CatalogSnapshot, InputError

if TYPE_CHECKING:
    from archipel.policy import Policy

T = TypeVar("T")

EXIT_INFEASIBLE = 1
EXIT_INPUT = 2
EXIT_FAULT = 3

MaxFileSize = Annotated[
    float,
    typer.Option(
        "--max-file-size",
        metavar="MB",
        help=f"Refuse spec files larger than this, in megabytes (default {MAX_FILE_MB:g}).",
        min=0.001,
    ),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Currency = Annotated[
    str | None,
    typer.Option(
        "--currency",
        metavar="CODE",
        help="Rank and show money in this currency (ISO 4217, e.g. EUR; default: the "
        "policy's `currency`, else the catalog's, USD). Offer prices are shown beside it.",
    ),
]


def decimal_flag(text: str) -> Decimal:
    """A money flag as the exact decimal typed (the workload's fields then judge its range)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a decimal number (e.g. 2.50)") from None


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn Archipel's errors into a clear message and an exit status."""
    try:
        return fn()
    except InputError as exc:
        fail(str(exc), EXIT_INPUT)
    except ArchipelError as exc:
        fail(str(exc), EXIT_FAULT)


def exit_with(code: int) -> None:
    """End the command with ``code`` unless it is 0."""
    if code:
        raise typer.Exit(code)


def load_catalog() -> CatalogSnapshot:
    from archipel.catalog import load_snapshot

    return load_snapshot(snapshot_path())


def load_policy(path: Path | None) -> Any:
    from archipel.policy import default_policy, parse_policy

    if path is None:
        return default_policy()
    docs = read_yaml_documents(path)
    if len(docs) != 1:
        raise InputError(f"{path}: a policy file holds exactly one YAML document")
    return parse_policy(docs[0], str(path))


def in_comparison_currency(
    snapshot: CatalogSnapshot, flag: str | None, policy: Policy
) -> CatalogSnapshot:
    """The snapshot compared in the chosen currency: ``--currency``, the policy's, the catalog's.

    A code is read without regard to case; one the catalog has no rate for is
    an :class:`InputError` that lists the known ones.
    """
    if flag is not None:
        return snapshot.in_currency(flag.strip().upper(), "--currency")
    if policy.currency is not None:
        return snapshot.in_currency(policy.currency, f"policy `{policy.name}`: currency")
    return snapshot


def split_list(values: list[str] | None) -> tuple[str, ...]:
    """Comma-separated values of a repeatable flag, flattened, blanks dropped."""
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return tuple(out)


def check_provider_flags(snapshot: CatalogSnapshot, **flags: tuple[str, ...]) -> None:
    """Every provider named on the command line must be one of the catalog's."""
    for name, values in flags.items():
        for provider in values:
            snapshot.check_provider(provider, f"--{name.replace('_', '-')}")


def console() -> Any:
    from rich.console import Console

    out = Console(soft_wrap=False)
    if not out.is_terminal:  # piped or captured: wide enough for the plan table
        out = Console(soft_wrap=False, width=160)
    return out
