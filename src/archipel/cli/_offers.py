"""Private offers on the command line, and providers that have no offers.

Where private-offers files come from, in this order (all are merged):

1. ``--offers FILE`` (repeatable); without it, ``ARCHIPEL_OFFERS`` (paths
   separated by ``:``, ``;`` on Windows);
2. the ``offers:`` key of the workload file (``workloads: [...]`` form) or the
   fleet file given to the command, a path or a list of paths relative to it.

A provider can be registered (its legal facts known) yet sell nothing in the
public catalog (CoreWeave publishes no price list there). Naming only such
providers is a request that no public price can meet; the check below says so
in one line, with the way to add contract prices, instead of a plan that
rejects every offer as "outside the requested providers".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._config import MAX_FILE_MB, read_text, read_yaml_documents
from archipel.core import CapacityLimit, CatalogSnapshot, FleetSpec, InputError

if TYPE_CHECKING:
    from archipel.catalog import PrivateOffers

ENV_OFFERS = "ARCHIPEL_OFFERS"
HOW_TO_ADD = "add your contract prices with --offers FILE (see docs/catalog.md#private-offers)"

OffersOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--offers",
        metavar="FILE",
        help="Private offers YAML (your negotiated prices) merged into the catalog; "
        f"repeatable. Default: ${ENV_OFFERS}.",
    ),
]


def _spec_offers(spec: Path | None, max_mb: float) -> list[Path]:
    """The ``offers:`` paths of a workload or fleet file, relative to that file."""
    if spec is None:
        return []
    documents = read_yaml_documents(spec, max_mb)
    found: list[Path] = []
    for doc in documents:
        value = doc.get("offers") if isinstance(doc, Mapping) else None
        if value is None:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InputError(f"{spec}: offers: must be a path or a list of paths")
        found += [spec.parent / i for i in items]
    return found


def offer_files(
    flags: Sequence[Path] | None, spec: Path | None = None, max_mb: float = MAX_FILE_MB
) -> list[Path]:
    """Every private-offers file that applies, flag (or environment) first, then the spec's."""
    if flags:
        given = list(flags)
    else:
        env = os.environ.get(ENV_OFFERS, "")
        given = [Path(p) for p in env.split(os.pathsep) if p.strip()]
    return list(dict.fromkeys([*given, *_spec_offers(spec, max_mb)]))


def _parsed(
    snapshot: CatalogSnapshot, flags: Sequence[Path] | None, spec: Path | None, max_mb: float
) -> list[PrivateOffers]:
    paths = offer_files(flags, spec, max_mb)
    if not paths:
        return []
    from archipel.catalog import load_regions, parse_private_offers

    regions = load_regions()
    return [
        parse_private_offers(read_text(p, max_mb, "private-offers file"), str(p), snapshot, regions)
        for p in paths
    ]


def with_offers(
    snapshot: CatalogSnapshot,
    flags: Sequence[Path] | None,
    spec: Path | None = None,
    max_mb: float = MAX_FILE_MB,
) -> CatalogSnapshot:
    """``snapshot`` with every applicable private-offers file merged in."""
    from archipel.catalog import with_private_offers

    return with_private_offers(snapshot, _parsed(snapshot, flags, spec, max_mb))


def _capacity_limits(spec: FleetSpec, privates: Sequence[PrivateOffers]) -> list[CapacityLimit]:
    stated = {(c.provider, c.region, c.accelerator) for c in spec.capacity}
    added: dict[tuple[str, str, str], int] = {}
    for p in privates:
        for provider, region, accelerator, gpus in p.capacity:
            key = (provider, region, accelerator)
            if key not in stated:
                added[key] = added.get(key, 0) + gpus
    return [
        CapacityLimit(provider=p, region=r, accelerator=a, gpus=n)
        for (p, r, a), n in sorted(added.items())
    ]


def fleet_with_offers(
    snapshot: CatalogSnapshot,
    spec: FleetSpec,
    flags: Sequence[Path] | None,
    file: Path,
    max_mb: float = MAX_FILE_MB,
) -> tuple[CatalogSnapshot, FleetSpec]:
    """The snapshot with the private offers, and the fleet with their capacities.

    A private offer's ``capacity`` becomes a capacity limit of its provider,
    region and model, unless the fleet file already sets one for them.
    """
    from archipel.catalog import with_private_offers

    privates = _parsed(snapshot, flags, file, max_mb)
    limits = _capacity_limits(spec, privates)
    if limits:
        spec = spec.model_copy(update={"capacity": [*spec.capacity, *limits]})
    snapshot = with_private_offers(snapshot, privates)
    require_priced(snapshot, workload_allow_lists(spec.workloads))
    return snapshot, spec


def unpriced(snapshot: CatalogSnapshot, providers: Iterable[str]) -> list[str]:
    """The named registered providers that have no offer in ``snapshot``, in the order given.

    A name the registry does not know is left out: it is a typo, which the
    unknown-name check reports with suggestions.
    """
    selling = {c.provider for c in snapshot.offers.classes}
    return [p for p in dict.fromkeys(providers) if p in snapshot.providers and p not in selling]


def no_price_list(names: Sequence[str]) -> str:
    """The one line that says a provider has no offers, and how to add them."""
    who = ", ".join(names)
    verb = "has" if len(names) == 1 else "have"
    return f"{who} {verb} no public price list in the catalog; {HOW_TO_ADD}"


def require_priced(snapshot: CatalogSnapshot, allow_lists: Iterable[Sequence[str]]) -> None:
    """Refuse an allow-list whose providers all lack offers; note the ones that do.

    Each item is one request's ``providers`` (empty: any provider). When every
    provider of a list lacks offers, no public price can meet the request: an
    :class:`InputError` names them and how to add contract prices. When only
    some do, a note on stderr says so and planning goes on with the others.
    """
    noted: list[str] = []
    for allowed in allow_lists:
        missing = unpriced(snapshot, allowed)
        if allowed and len(missing) == len(set(allowed)):
            raise InputError(no_price_list(missing))
        noted += [m for m in missing if m not in noted]
    if noted:
        typer.echo(f"note: {no_price_list(noted)}", err=True)


def workload_allow_lists(workloads: Iterable[Any]) -> list[tuple[str, ...]]:
    """Each workload's provider allow-list (``constraints.providers``)."""
    return [tuple(w.constraints.providers) for w in workloads]
