"""``archipel fleet plan``: place a whole portfolio at minimum cost under the fleet's rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from archipel.cli._common import (
    EXIT_INFEASIBLE,
    AsJson,
    Currency,
    MaxFileSize,
    PolicyFile,
    console,
    exit_with,
    fail,
    guard,
    in_comparison_currency,
    load_catalog,
    load_policy,
)
from archipel.cli._config import MAX_FILE_MB
from archipel.cli._offers import OffersOption

FleetFile = Annotated[
    Path, typer.Argument(help="Fleet YAML: horizon, workloads, capacity, commitments, caps.")
]
SolverName = Annotated[
    str,
    typer.Option("--solver", help="milp (HiGHS, optimal within --gap) or greedy (cheapest first)."),
]
TimeLimit = Annotated[
    float, typer.Option("--time-limit", help="Solver time limit, seconds.", min=0.1)
]
Gap = Annotated[
    float, typer.Option("--gap", help="Relative optimality gap to stop at.", min=0.0, max=1.0)
]
Seed = Annotated[int, typer.Option("--seed", help="Solver random seed.")]
Timings = Annotated[
    bool, typer.Option("--timings", help="Include solve time in --json (then not byte-stable).")
]


def _solve(
    file: Path,
    *,
    policy: Path | None,
    currency: str | None,
    max_file_size: float,
    quiet: bool,
    offers: list[Path] | None,
    **solve: Any,
) -> tuple[Any, Any, Any]:
    """The planner (its snapshot in the comparison currency), the spec it planned (private
    offers merged) and the fleet plan it made."""
    from archipel.cli._config import load_fleet
    from archipel.cli._offers import fleet_with_offers
    from archipel.cli._progress import progress
    from archipel.placement import Planner, plan_fleet

    spec = load_fleet(file, max_file_size)
    base, spec = fleet_with_offers(load_catalog(), spec, offers, file, max_file_size)
    pol = load_policy(policy)
    planner = Planner(in_comparison_currency(base, currency, pol), pol)
    what = "HiGHS" if solve["solver"] == "milp" else "greedy"
    with progress(f"planning fleet {spec.name} ({what})", quiet=quiet, after=1.0):
        return planner, spec, plan_fleet(planner, spec, **solve)


def fleet_plan(
    file: FleetFile,
    solver: SolverName = "milp",
    time_limit: TimeLimit = 60.0,
    gap: Gap = 0.01,
    seed: Seed = 0,
    policy: PolicyFile = None,
    currency: Currency = None,
    as_json: AsJson = False,
    timings: Timings = False,
    max_file_size: MaxFileSize = MAX_FILE_MB,
    private_offers: OffersOption = None,
) -> None:
    """Place every workload at minimum cost (usage + commitment shortfall) under the fleet's rules.

    Exit status: 0 when the fleet is feasible, 1 when it is not (the output says
    which rules conflict and by how much), 2 on bad input, 3 when the solver's answer
    fails its check (no plan is given).
    """
    if solver not in {"milp", "greedy"}:
        fail("--solver must be milp or greedy")

    def run() -> int:
        planner, spec, result = _solve(
            file,
            policy=policy,
            currency=currency,
            max_file_size=max_file_size,
            quiet=as_json,
            offers=private_offers,
            solver=solver,
            time_limit=time_limit,
            gap=gap,
            seed=seed,
        )
        if as_json:
            from archipel.cli._documents import fleet_document

            doc = fleet_document(result, planner.snapshot, timings, horizon=spec.horizon)
            typer.echo(json.dumps(doc, indent=2))
        else:
            from archipel.cli._render import render_fleet

            render_fleet(console(), result, planner.snapshot)
        return 0 if result.feasible else EXIT_INFEASIBLE

    exit_with(guard(run))


def plan_uploaded_fleet(planner: Any, text: str, *, time_limit: float) -> dict[str, Any]:
    """``archipel fleet plan FILE --json``'s document for a fleet file uploaded in the console,
    planned by ``planner`` (the server's catalog and policy, in the policy's currency).

    The upload is one file: its workloads are written inline (a ``{file: PATH}`` entry
    would read the server's disk, and is refused), and private offers are not merged
    (as the plan form does not). :class:`InputError` names what is wrong.
    """
    import tempfile

    from archipel.cli._config import load_fleet, read_yaml_documents
    from archipel.cli._documents import fleet_document
    from archipel.core import InputError
    from archipel.placement import plan_fleet

    with tempfile.TemporaryDirectory(prefix="archipel-fleet-") as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            documents = read_yaml_documents(path)
            doc = documents[0] if len(documents) == 1 else None
            if isinstance(doc, dict) and "offers" in doc:
                raise InputError(
                    "fleet.yaml: offers: private offers are not merged in the console; "
                    "plan this fleet with `archipel fleet plan FILE --offers ...`"
                )
            workloads = doc.get("workloads") if isinstance(doc, dict) else None
            if isinstance(workloads, list) and any(
                isinstance(w, dict) and "file" in w for w in workloads
            ):
                raise InputError(
                    "fleet.yaml: workloads: write each workload inline; an uploaded fleet "
                    "cannot name other files ({file: PATH})"
                )
            spec = load_fleet(path)
        except InputError as exc:
            raise InputError(str(exc).replace(f"{tmp}/", "")) from None
    result = plan_fleet(planner, spec, solver="milp", time_limit=time_limit, gap=0.01, seed=0)
    return fleet_document(result, planner.snapshot, horizon=spec.horizon)
