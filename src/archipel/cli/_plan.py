"""``archipel plan``: rank placements for workloads given as a file, as flags, or both."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import (
    EXIT_INFEASIBLE,
    AsJson,
    Currency,
    MaxFileSize,
    PolicyFile,
    check_provider_flags,
    console,
    decimal_flag,
    exit_with,
    guard,
    in_comparison_currency,
    load_catalog,
    load_policy,
    split_list,
)
from archipel.cli._config import MAX_FILE_MB, load_workloads
from archipel.cli._offers import OffersOption
from archipel.core import Constraints, InputError, Workload, parse_accelerator_spec

if TYPE_CHECKING:
    from archipel.core import CatalogSnapshot
    from archipel.placement import PlacementRequest, Plan, Planner

WorkloadFile = Annotated[
    Path | None,
    typer.Argument(help="Workload spec YAML (one workload, a list, or `workloads: [...]`)."),
]
Gpus = Annotated[
    list[str] | None,
    typer.Option(
        "--gpus",
        metavar="MODEL:COUNT",
        help="MODEL:COUNT per node, e.g. H100:8; repeat for alternatives.",
    ),
]
DataClassFlag = Annotated[
    str | None,
    typer.Option(
        "--data-class", metavar="CLASS", help="Data class of the policy (default: internal)."
    ),
]
Countries = Annotated[
    list[str] | None,
    typer.Option(
        "--countries",
        metavar="CC,...|EU|EEA",
        help="Allowed site countries, comma-separated: ISO codes, EU (the 27 member "
        "states) or EEA (EU plus IS, LI, NO).",
    ),
]
Providers = Annotated[
    list[str] | None,
    typer.Option(
        "--providers", metavar="PROVIDER,...", help="Only these providers, comma-separated."
    ),
]
ExcludeProviders = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude-providers",
        metavar="PROVIDER,...",
        help="Never these providers, comma-separated.",
    ),
]
Spot = Annotated[
    bool | None,
    typer.Option("--spot/--no-spot", help="Tolerate spot capacity (priced at the cheaper market)."),
]
Hours = Annotated[
    float | None, typer.Option("--hours", help="Duration in hours (default 1).", min=0.0)
]
Nodes = Annotated[int | None, typer.Option("--nodes", help="Number of nodes (default 1).", min=1)]
MaxPrice = Annotated[
    Decimal | None,
    typer.Option(
        "--max-price",
        metavar="AMOUNT",
        parser=decimal_flag,
        help="Max price per hour of the whole placement (all nodes), in the comparison "
        "currency (see --currency).",
    ),
]
Top = Annotated[int, typer.Option("--top", help="How many placements to show.", min=1, max=1000)]
Explain = Annotated[
    str | None,
    typer.Option(
        "--explain",
        metavar="PROVIDER/REGION/INSTANCE",
        help="PROVIDER/REGION/INSTANCE: say why this offer won or lost.",
    ),
]


@dataclass(frozen=True)
class RequestFlags:
    """The request flags of ``plan``: a workload of their own, or overrides of a file's."""

    gpus: tuple[str, ...] = ()
    data_class: str | None = None
    countries: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    spot: bool | None = None
    hours: float | None = None
    nodes: int | None = None
    max_price: Decimal | None = None

    def workloads(self, file: Path | None, max_file_size: float) -> list[Workload]:
        """The file's workloads with these flags taking precedence, or the flags' own."""
        if file is not None:
            return [self.override(w) for w in load_workloads(file, max_file_size)]
        if not self.gpus:
            raise InputError("give a workload FILE or --gpus MODEL:COUNT (e.g. --gpus H100:8)")
        return [self.workload()]

    def workload(self) -> Workload:
        """The workload the flags alone describe (the defaults of a workload file)."""
        from archipel.core import parse_workload

        cap = {} if self.max_price is None else {"max_price_per_hour": self.max_price}
        doc: dict[str, Any] = {
            "name": "cli",
            "kind": "batch",
            "resources": {
                "accelerators": list(self.gpus),
                "spot": bool(self.spot),
                "nodes": self.nodes or 1,
            },
            "data": {"class": self.data_class or "internal"},
            "constraints": {
                "countries": list(self.countries),
                "providers": list(self.providers),
                "exclude_providers": list(self.exclude),
                **cap,
            },
            "duration_hours": self.hours if self.hours is not None else 1.0,
        }
        return parse_workload(doc, "command line")

    def override(self, w: Workload) -> Workload:
        """A workload from a file with the flags given taking precedence."""
        resources = w.resources.model_copy(update=self._resources())
        c = w.constraints
        constraints = Constraints.model_validate(
            {
                "countries": list(self.countries or c.countries),
                "providers": list(self.providers or c.providers),
                "exclude_providers": list(self.exclude or c.exclude_providers),
                "max_price_per_hour": c.max_price_per_hour
                if self.max_price is None
                else self.max_price,
            }
        )
        update: dict[str, Any] = {"resources": resources, "constraints": constraints}
        if self.data_class:
            update["data"] = w.data.model_copy(update={"class_": self.data_class})
        if self.hours is not None:
            update["duration_hours"] = self.hours
        return w.model_copy(update=update)

    def _resources(self) -> dict[str, Any]:
        update: dict[str, Any] = {}
        if self.gpus:
            update["accelerators"] = tuple(parse_accelerator_spec(g) for g in self.gpus)
        if self.spot is not None:
            update["spot"] = self.spot
        if self.nodes is not None:
            update["nodes"] = self.nodes
        return update


def _planner(
    policy: Path | None, currency: str | None, flags: RequestFlags, base: CatalogSnapshot
) -> Planner:
    from archipel.placement import Planner

    pol = load_policy(policy)
    snapshot = in_comparison_currency(base, currency, pol)
    check_provider_flags(snapshot, providers=flags.providers, exclude_providers=flags.exclude)
    return Planner(snapshot, pol)


def _requests(planner: Planner, workloads: list[Workload]) -> list[PlacementRequest]:
    from archipel.placement import PlacementRequest

    return [
        # the policy's spelling of the data class (`Health` is `health`)
        replace(r, data_class=planner.policy.data_class(r.data_class).name)
        for r in (PlacementRequest.from_workload(w) for w in workloads)
    ]


def _explain(planner: Planner, requests: list[PlacementRequest], key: str, as_json: bool) -> int:
    from archipel.cli._output import explain_document

    if len(requests) != 1:
        raise InputError("--explain needs a single workload; this file holds several")
    verdicts = planner.explain(requests[0], key)
    currency = planner.snapshot.comparison_currency
    if as_json:
        typer.echo(json.dumps(explain_document(verdicts, currency), indent=2))
    else:
        from archipel.cli._render import render_explain

        render_explain(console(), verdicts, currency)
    return 0


def _show(planner: Planner, plans: list[Plan], as_json: bool) -> int:
    if as_json:
        from archipel.cli._documents import plans_document

        typer.echo(json.dumps(plans_document(plans, planner.snapshot), indent=2))
    else:
        from archipel.cli._render import render_plan

        out = console()
        for p in plans:
            render_plan(out, p, planner.snapshot)
            out.print()
    return 0 if all(p.feasible for p in plans) else EXIT_INFEASIBLE


def plan(
    file: WorkloadFile = None,
    gpus: Gpus = None,
    data_class: DataClassFlag = None,
    countries: Countries = None,
    providers: Providers = None,
    exclude_providers: ExcludeProviders = None,
    spot: Spot = None,
    hours: Hours = None,
    nodes: Nodes = None,
    max_price: MaxPrice = None,
    policy: PolicyFile = None,
    currency: Currency = None,
    top: Top = 5,
    explain: Explain = None,
    as_json: AsJson = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
    private_offers: OffersOption = None,
) -> None:
    """Rank feasible placements by cost and explain every rejection.

    Exit status: 0 when every workload has a feasible placement, 1 when one has
    none, 2 on bad input, 3 on an internal fault.
    """
    flags = RequestFlags(
        split_list(gpus),
        data_class,
        split_list(countries),
        split_list(providers),
        split_list(exclude_providers),
        spot,
        hours,
        nodes,
        max_price,
    )

    def run() -> int:
        from archipel.cli._offers import require_priced, with_offers, workload_allow_lists

        workloads = flags.workloads(file, max_file_size)
        base = with_offers(load_catalog(), private_offers, file, max_file_size)
        planner = _planner(policy, currency, flags, base)
        require_priced(planner.snapshot, workload_allow_lists(workloads))
        requests = _requests(planner, workloads)
        if explain:
            return _explain(planner, requests, explain, as_json)
        return _show(planner, [planner.plan(r, top=top) for r in requests], as_json)

    exit_with(guard(run))
