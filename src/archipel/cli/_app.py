"""The ``archipel`` command: the composition root that wires catalog, policy and placement."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from archipel import __version__
from archipel.cli._config import MAX_FILE_MB, load_workloads, read_yaml_documents, snapshot_path
from archipel.cli._offers import OffersOption
from archipel.cli._refresh import catalog_refresh
from archipel.core import (
    ArchipelError,
    CatalogSnapshot,
    Constraints,
    InputError,
    Workload,
    parse_accelerator_spec,
)

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

T = TypeVar("T")

MaxFileSize = Annotated[
    float,
    typer.Option(
        "--max-file-size",
        metavar="MB",
        help=f"Refuse spec files larger than this, in megabytes (default {MAX_FILE_MB:g}).",
        min=0.001,
    ),
]


def _decimal_flag(text: str) -> Decimal:
    """A money flag as the exact decimal typed (the workload's fields then judge its range)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a decimal number (e.g. 2.50)") from None


EXIT_INFEASIBLE = 1
EXIT_INPUT = 2
EXIT_FAULT = 3


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn Archipel's errors into a clear message and an exit status."""
    try:
        return fn()
    except InputError as exc:
        _fail(str(exc), EXIT_INPUT)
    except ArchipelError as exc:
        _fail(str(exc), EXIT_FAULT)


def _snapshot() -> CatalogSnapshot:
    from archipel.catalog import load_snapshot

    return load_snapshot(snapshot_path())


def _policy(path: Path | None) -> Any:
    from archipel.policy import default_policy, parse_policy

    if path is None:
        return default_policy()
    docs = read_yaml_documents(path)
    if len(docs) != 1:
        raise InputError(f"{path}: a policy file holds exactly one YAML document")
    return parse_policy(docs[0], str(path))


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return tuple(out)


def _check_provider_flags(snapshot: CatalogSnapshot, **flags: tuple[str, ...]) -> None:
    """Every provider named on the command line must be one of the catalog's."""
    for name, values in flags.items():
        for provider in values:
            snapshot.check_provider(provider, f"--{name.replace('_', '-')}")


def _console() -> Any:
    from rich.console import Console

    console = Console(soft_wrap=False)
    if not console.is_terminal:  # piped or captured: wide enough for the plan table
        console = Console(soft_wrap=False, width=160)
    return console


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


def _flag_workload(
    gpus: tuple[str, ...],
    data_class: str | None,
    countries: tuple[str, ...],
    providers: tuple[str, ...],
    exclude: tuple[str, ...],
    spot: bool | None,
    hours: float | None,
    nodes: int | None,
    max_price: Decimal | None,
) -> Workload:
    from archipel.core import parse_workload

    doc: dict[str, Any] = {
        "name": "cli",
        "kind": "batch",
        "resources": {"accelerators": list(gpus), "spot": bool(spot), "nodes": nodes or 1},
        "data": {"class": data_class or "internal"},
        "constraints": {
            "countries": list(countries),
            "providers": list(providers),
            "exclude_providers": list(exclude),
            **({"max_price_per_hour": max_price} if max_price is not None else {}),
        },
        "duration_hours": hours if hours is not None else 1.0,
    }
    return parse_workload(doc, "command line")


def _override(
    w: Workload,
    gpus: tuple[str, ...],
    data_class: str | None,
    countries: tuple[str, ...],
    providers: tuple[str, ...],
    exclude: tuple[str, ...],
    spot: bool | None,
    hours: float | None,
    nodes: int | None,
    max_price: Decimal | None,
) -> Workload:
    """A workload from a file with the command line's flags taking precedence."""
    resources = w.resources.model_copy(
        update={
            **({"accelerators": tuple(parse_accelerator_spec(g) for g in gpus)} if gpus else {}),
            **({"spot": spot} if spot is not None else {}),
            **({"nodes": nodes} if nodes is not None else {}),
        }
    )
    c = w.constraints
    constraints = Constraints.model_validate(
        {
            "countries": list(countries or c.countries),
            "providers": list(providers or c.providers),
            "exclude_providers": list(exclude or c.exclude_providers),
            "max_price_per_hour": max_price if max_price is not None else c.max_price_per_hour,
        }
    )
    return w.model_copy(
        update={
            "resources": resources,
            "constraints": constraints,
            **({"data": w.data.model_copy(update={"class_": data_class})} if data_class else {}),
            **({"duration_hours": hours} if hours is not None else {}),
        }
    )


@app.command()
def plan(
    file: Annotated[
        Path | None,
        typer.Argument(help="Workload spec YAML (one workload, a list, or `workloads: [...]`)."),
    ] = None,
    gpus: Annotated[
        list[str] | None,
        typer.Option(
            "--gpus",
            metavar="MODEL:COUNT",
            help="MODEL:COUNT per node, e.g. H100:8; repeat for alternatives.",
        ),
    ] = None,
    data_class: Annotated[
        str | None,
        typer.Option(
            "--data-class", metavar="CLASS", help="Data class of the policy (default: internal)."
        ),
    ] = None,
    countries: Annotated[
        list[str] | None,
        typer.Option(
            "--countries",
            metavar="CC,...|EU|EEA",
            help="Allowed site countries, comma-separated: ISO codes, EU (the 27 member "
            "states) or EEA (EU plus IS, LI, NO).",
        ),
    ] = None,
    providers: Annotated[
        list[str] | None,
        typer.Option(
            "--providers", metavar="PROVIDER,...", help="Only these providers, comma-separated."
        ),
    ] = None,
    exclude_providers: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-providers",
            metavar="PROVIDER,...",
            help="Never these providers, comma-separated.",
        ),
    ] = None,
    spot: Annotated[
        bool | None,
        typer.Option(
            "--spot/--no-spot", help="Tolerate spot capacity (priced at the cheaper market)."
        ),
    ] = None,
    hours: Annotated[
        float | None, typer.Option("--hours", help="Duration in hours (default 1).", min=0.0)
    ] = None,
    nodes: Annotated[
        int | None, typer.Option("--nodes", help="Number of nodes (default 1).", min=1)
    ] = None,
    max_price: Annotated[
        Decimal | None,
        typer.Option(
            "--max-price",
            metavar="USD",
            parser=_decimal_flag,
            help="Max price per hour of the whole placement, comparison currency (USD).",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", help="How many placements to show.", min=1, max=1000)
    ] = 5,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="PROVIDER/REGION/INSTANCE",
            help="PROVIDER/REGION/INSTANCE: say why this offer won or lost.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
    private_offers: OffersOption = None,
) -> None:
    """Rank feasible placements by total cost and explain every rejection.

    Exit status: 0 when every workload has a feasible placement, 1 when one has
    none, 2 on bad input, 3 on an internal fault.
    """
    from archipel.cli._offers import require_priced, with_offers, workload_allow_lists
    from archipel.cli._output import explain_document, plan_document
    from archipel.placement import PlacementRequest, Planner

    flags = (
        _split(gpus),
        data_class,
        _split(countries),
        _split(providers),
        _split(exclude_providers),
        spot,
        hours,
        nodes,
        max_price,
    )

    def run() -> int:
        if file is None:
            if not gpus:
                raise InputError("give a workload FILE or --gpus MODEL:COUNT (e.g. --gpus H100:8)")
            workloads = [_flag_workload(*flags)]
        else:
            workloads = [_override(w, *flags) for w in load_workloads(file, max_file_size)]
        snapshot = with_offers(_snapshot(), private_offers, file, max_file_size)
        _check_provider_flags(snapshot, providers=flags[3], exclude_providers=flags[4])
        require_priced(snapshot, workload_allow_lists(workloads))
        planner = Planner(snapshot, _policy(policy))
        requests = [
            # the policy's spelling of the data class (`Health` is `health`)
            replace(r, data_class=planner.policy.data_class(r.data_class).name)
            for r in (PlacementRequest.from_workload(w) for w in workloads)
        ]
        if explain:
            if len(requests) != 1:
                raise InputError("--explain needs a single workload; this file holds several")
            verdicts = planner.explain(requests[0], explain)
            if as_json:
                typer.echo(
                    json.dumps(explain_document(verdicts, snapshot.comparison_currency), indent=2)
                )
            else:
                from archipel.cli._render import render_explain

                render_explain(_console(), verdicts, snapshot.comparison_currency)
            return 0
        plans = [planner.plan(r, top=top) for r in requests]
        if as_json:
            docs = [plan_document(p, snapshot) for p in plans]
            out = (
                docs[0]
                if len(docs) == 1
                else {"feasible": all(d["feasible"] for d in docs), "plans": docs}
            )
            typer.echo(json.dumps(out, indent=2))
        else:
            from archipel.cli._render import render_plan

            console = _console()
            for p in plans:
                render_plan(console, p, snapshot)
                console.print()
        return 0 if all(p.feasible for p in plans) else EXIT_INFEASIBLE

    code = _guard(run)
    if code:
        raise typer.Exit(code)


@catalog_app.callback(invoke_without_command=True)
def catalog(
    ctx: typer.Context,
    gpus: Annotated[
        list[str] | None,
        typer.Option(
            "--gpus", metavar="MODEL:COUNT", help="MODEL or MODEL:COUNT, comma-separated."
        ),
    ] = None,
    countries: Annotated[
        list[str] | None,
        typer.Option(
            "--countries",
            metavar="CC,...|EU|EEA",
            help="ISO codes, EU (the 27 member states) or EEA (EU plus IS, LI, NO), "
            "comma-separated.",
        ),
    ] = None,
    providers: Annotated[
        list[str] | None,
        typer.Option("--providers", metavar="PROVIDER,...", help="Provider ids, comma-separated."),
    ] = None,
    include_cpu: Annotated[
        bool, typer.Option("--include-cpu", help="Also list offers without accelerators.")
    ] = False,
    accelerators: Annotated[
        bool, typer.Option("--accelerators", help="List the known accelerator names and exit.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many rows (cheapest first).", min=1)
    ] = 30,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines, one offer each.")
    ] = False,
    private_offers: OffersOption = None,
) -> None:
    """List offers, cheapest first, filtered by accelerator, country and provider.

    Exit status: 0 when the listing ran (even if no offer matches), 2 on bad
    input, including --providers naming only providers without offers.
    """
    if ctx.invoked_subcommand is not None:
        return
    from archipel.catalog import offers_at, select_offers
    from archipel.cli._offers import require_priced, with_offers
    from archipel.cli._output import offer_document

    def run() -> None:
        snapshot = with_offers(_snapshot(), private_offers)
        _check_provider_flags(snapshot, providers=_split(providers))
        require_priced(snapshot, [_split(providers)])
        if accelerators:
            for name in snapshot.offers.accelerators:
                if name:
                    typer.echo(name)
            return
        rows = select_offers(
            snapshot,
            _split(gpus),
            _split(countries),
            _split(providers),
            accelerators_only=not include_cpu,
        )
        offers = offers_at(snapshot, rows[:limit])
        if as_json:
            for o in offers:
                typer.echo(json.dumps(offer_document(o)))
            return
        from archipel.cli._render import render_offers

        render_offers(_console(), offers, len(rows), snapshot)

    _guard(run)


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

    _guard(run)


catalog_app.command("refresh")(catalog_refresh)


@fleet_app.command("plan")
def fleet_plan(
    file: Annotated[
        Path, typer.Argument(help="Fleet YAML: horizon, workloads, capacity, commitments, caps.")
    ],
    solver: Annotated[
        str,
        typer.Option(
            "--solver", help="milp (HiGHS, optimal within --gap) or greedy (cheapest first)."
        ),
    ] = "milp",
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Solver time limit, seconds.", min=0.1)
    ] = 60.0,
    gap: Annotated[
        float, typer.Option("--gap", help="Relative optimality gap to stop at.", min=0.0, max=1.0)
    ] = 0.01,
    seed: Annotated[int, typer.Option("--seed", help="Solver random seed.")] = 0,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    timings: Annotated[
        bool, typer.Option("--timings", help="Include solve time in --json (then not byte-stable).")
    ] = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
    private_offers: OffersOption = None,
) -> None:
    """Place every workload at minimum cost (usage + commitment shortfall) under the fleet's rules.

    Exit status: 0 when the fleet is feasible, 1 when it is not (the output says
    which rules conflict and by how much), 2 on bad input, 3 when the solver's answer
    fails its check (no plan is given).
    """
    from archipel.cli._config import load_fleet
    from archipel.cli._offers import fleet_with_offers
    from archipel.cli._output import fleet_document
    from archipel.placement import Planner, plan_fleet

    if solver not in {"milp", "greedy"}:
        _fail("--solver must be milp or greedy")

    def run() -> int:
        from archipel.cli._progress import progress

        spec = load_fleet(file, max_file_size)
        snapshot, spec = fleet_with_offers(_snapshot(), spec, private_offers, file, max_file_size)
        planner = Planner(snapshot, _policy(policy))
        what = "HiGHS" if solver == "milp" else "greedy"
        with progress(f"planning fleet {spec.name} ({what})", quiet=as_json, after=1.0):
            result = plan_fleet(
                planner,
                spec,
                solver=solver,  # type: ignore[arg-type]
                time_limit=time_limit,
                gap=gap,
                seed=seed,
            )
        if as_json:
            typer.echo(json.dumps(fleet_document(result, timings), indent=2))
        else:
            from archipel.cli._render import render_fleet

            render_fleet(_console(), result)
        return 0 if result.feasible else EXIT_INFEASIBLE

    code = _guard(run)
    if code:
        raise typer.Exit(code)


@policy_app.command("show")
def policy_show(
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped one)."),
    ] = None,
) -> None:
    """Print each data class of a policy and the rules it applies, in plain words."""

    def run() -> None:
        pol = _policy(policy)
        typer.echo(f"policy {pol.name}")
        for dc in pol.classes.values():
            typer.echo(f"\n{dc.name}: {dc.description}" if dc.description else f"\n{dc.name}")
            if not dc.rules:
                typer.echo("  (no rule: anything goes)")
            for rule in dc.rules:
                typer.echo(f"  - {rule.name}: {rule.describe()}")

    _guard(run)


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML to validate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Validate a policy file and show what each data class allows in the catalog.

    Exit status: 0 when the file is a valid policy, 2 when it is not (the
    message says which field to change).
    """
    from archipel.cli._output import policy_document

    def run() -> None:
        pol = _policy(file)
        doc = policy_document(pol, _snapshot(), str(file))
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        from archipel.cli._render import render_policy_check

        render_policy_check(_console(), doc)

    _guard(run)


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
