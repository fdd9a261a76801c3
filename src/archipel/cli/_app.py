"""The ``archipel`` command: the composition root that wires catalog, policy and placement."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from archipel import __version__
from archipel.cli._common import (
    AsJson,
    check_provider_flags,
    console,
    guard,
    load_catalog,
    load_policy,
    split_list,
)
from archipel.cli._fleet import fleet_plan
from archipel.cli._offers import OffersOption
from archipel.cli._plan import plan
from archipel.cli._refresh import catalog_refresh
from archipel.cli._simulate import simulate_app
from archipel.core import CatalogSnapshot

app = typer.Typer(
    name="archipel",
    help="Plan AI workloads across many clouds under a data-sovereignty policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
catalog_app = typer.Typer(
    help="List, filter, rebuild and refresh the GPU offer catalog.",
    invoke_without_command=True,
    add_completion=False,
)
policy_app = typer.Typer(help="Show and check sovereignty policies.", no_args_is_help=True)
fleet_app = typer.Typer(help="Plan a whole portfolio of workloads at once.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(policy_app, name="policy")
app.add_typer(fleet_app, name="fleet")
app.add_typer(simulate_app, name="simulate")
app.command("plan")(plan)
fleet_app.command("plan")(fleet_plan)

CatalogGpus = Annotated[
    list[str] | None,
    typer.Option("--gpus", metavar="MODEL:COUNT", help="MODEL or MODEL:COUNT, comma-separated."),
]
CatalogCountries = Annotated[
    list[str] | None,
    typer.Option(
        "--countries",
        metavar="CC,...|EU|EEA",
        help="ISO codes, EU (the 27 member states) or EEA (EU plus IS, LI, NO), comma-separated.",
    ),
]
CatalogProviders = Annotated[
    list[str] | None,
    typer.Option("--providers", metavar="PROVIDER,...", help="Provider ids, comma-separated."),
]
IncludeCpu = Annotated[
    bool, typer.Option("--include-cpu", help="Also list offers without accelerators.")
]
ListAccelerators = Annotated[
    bool, typer.Option("--accelerators", help="List the known accelerator names and exit.")
]
Limit = Annotated[
    int, typer.Option("--limit", help="At most this many rows (cheapest first).", min=1)
]
JsonLines = Annotated[bool, typer.Option("--json", help="Print JSON lines, one offer each.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"archipel {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Plan AI workloads across many clouds under a data-sovereignty policy."""


@catalog_app.callback(invoke_without_command=True)
def catalog(
    ctx: typer.Context,
    gpus: CatalogGpus = None,
    countries: CatalogCountries = None,
    providers: CatalogProviders = None,
    include_cpu: IncludeCpu = False,
    accelerators: ListAccelerators = False,
    limit: Limit = 30,
    as_json: JsonLines = False,
    private_offers: OffersOption = None,
) -> None:
    """List offers, cheapest first, filtered by accelerator, country and provider.

    Exit status: 0 when the listing ran (even if no offer matches), 2 on bad
    input, including --providers naming only providers without offers.
    """
    if ctx.invoked_subcommand is not None:
        return
    from archipel.cli._offers import require_priced, with_offers

    def run() -> None:
        snapshot = with_offers(load_catalog(), private_offers)
        check_provider_flags(snapshot, providers=split_list(providers))
        require_priced(snapshot, [split_list(providers)])
        if accelerators:
            for name in snapshot.offers.accelerators:
                if name:
                    typer.echo(name)
            return
        _list_offers(
            snapshot,
            (split_list(gpus), split_list(countries), split_list(providers)),
            limit,
            as_json,
            include_cpu,
        )

    guard(run)


def _list_offers(
    snapshot: CatalogSnapshot,
    filters: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    limit: int,
    as_json: bool,
    include_cpu: bool,
) -> None:
    """The cheapest ``limit`` offers matching (accelerators, countries, providers)."""
    from archipel.catalog import offers_at, select_offers

    rows = select_offers(snapshot, *filters, accelerators_only=not include_cpu)
    offers = offers_at(snapshot, rows[:limit])
    if as_json:
        from archipel.cli._output import offer_document

        for o in offers:
            typer.echo(json.dumps(offer_document(o)))
        return
    from archipel.cli._render import render_offers

    render_offers(console(), offers, len(rows), snapshot)


@catalog_app.command("build")
def catalog_build(
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Where to write (default: the packaged snapshot)."),
    ] = None,
) -> None:
    """Rebuild the snapshot from the sources shipped in the package."""
    from archipel.catalog import SNAPSHOT_FILE, build_snapshot, save_snapshot

    def run() -> None:
        from archipel.cli._progress import progress

        target = output or SNAPSHOT_FILE
        with progress("building the catalog from the shipped sources", after=1.0) as shown:
            snapshot, reports = build_snapshot()
            shown.update(f"writing {len(snapshot.offers):,} offers")
            save_snapshot(snapshot, target, reports)
        for r in reports:
            dropped = ", ".join(f"{n} {why}" for why, n in sorted(r.dropped.items()))
            typer.echo(
                f"{r.source}: {r.kept:,} offers" + (f" (dropped {dropped})" if dropped else "")
            )
        typer.echo(f"wrote {len(snapshot.offers):,} offers to {target}")

    guard(run)


catalog_app.command("refresh")(catalog_refresh)


@policy_app.command("show")
def policy_show(
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped one)."),
    ] = None,
) -> None:
    """Print each data class of a policy and the rules it applies, in plain words."""

    def run() -> None:
        pol = load_policy(policy)
        typer.echo(f"policy {pol.name}")
        for dc in pol.data_classes.values():
            typer.echo(f"\n{dc.name}: {dc.description}" if dc.description else f"\n{dc.name}")
            if not dc.rules:
                typer.echo("  (no rule: anything goes)")
            for rule in dc.rules:
                typer.echo(f"  - {rule.name}: {rule.describe()}")

    guard(run)


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML to validate.")],
    as_json: AsJson = False,
) -> None:
    """Validate a policy file and show what each data class allows in the catalog.

    Exit status: 0 when the file is a valid policy, 2 when it is not (the
    message says which field to change).
    """
    from archipel.cli._output import policy_document

    def run() -> None:
        pol = load_policy(file)
        doc = policy_document(pol, load_catalog(), str(file))
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        from archipel.cli._render import render_policy_check

        render_policy_check(console(), doc)

    guard(run)


def main() -> None:
    """Entry point of the ``archipel`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]


def _register_control_plane() -> None:
    from archipel.cli._cp import register

    register(app)


_register_control_plane()


def _register_ledger() -> None:
    from archipel.cli._ledger import register
    from archipel.cli._report import register as register_report

    register(app)
    register_report(app)


_register_ledger()
