"""``archipel simulate replay``: the ``openb`` trace on its own cluster, simulated against
observed queueing delay (the simulator's fidelity check; docs/simulate-replay.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import AsJson, console, guard
from archipel.core import InputError

if TYPE_CHECKING:
    from archipel.sim._replay import Study

DAY = 86_400.0


def replay(
    trace_dir: Annotated[
        Path,
        typer.Option(
            "--trace-dir",
            metavar="DIR",
            help="Folder of the openb trace: one openb_pod_list*.csv and one openb_node_list*.csv.",
        ),
    ],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the replay's draws.")] = 0,
    qq: Annotated[
        Path | None,
        typer.Option(
            "--qq",
            metavar="FILE.svg",
            help="Also draw the quantile-quantile plot of the delays, as one SVG file.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Replay every pod of the openb trace on the trace's nodes and compare queueing delays.

    The scheduler model is fitted on the pods created before the median creation time and
    judged on the others. Prints, per half: pods scheduled and never scheduled (observed
    and simulated), delay quantiles, the Wasserstein-1 distance (seconds) and the
    Kolmogorov-Smirnov statistic; and the same for a scheduler of capacity alone. The
    same trace and seed give the same output. Exit status: 0, or 2 on bad input.
    """
    from archipel.sim._openb import load_nodes, load_pods
    from archipel.sim._replay import study

    def run() -> dict[str, Any]:
        pods_file, nodes_file = _trace_files(trace_dir)
        if qq is not None and not (qq.parent if str(qq.parent) else Path(".")).is_dir():
            raise InputError(f"--qq {qq}: no such directory {qq.parent}")
        nodes = load_nodes(nodes_file)
        result = study(load_pods(pods_file), nodes, seed)
        if qq is not None:
            _write_qq(qq, result)
        return _document(result, pods_file, nodes_file)

    doc = guard(run)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _render(doc)


def _trace_files(folder: Path) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise InputError(f"--trace-dir {folder}: no such directory")
    found = []
    for kind in ("pod", "node"):
        files = sorted(folder.glob(f"openb_{kind}_list*.csv"))
        if len(files) != 1:
            raise InputError(
                f"--trace-dir {folder}: give a folder with exactly one openb_{kind}_list*.csv "
                f"(found {len(files)})"
            )
        found.append(files[0])
    return found[0], found[1]


def _write_qq(path: Path, result: Study) -> None:
    from archipel.cli._report import atomic
    from archipel.sim._report import render_replay_qq

    with atomic(path) as out:
        out.write_text(render_replay_qq(result), encoding="utf-8")
    typer.echo(f"wrote {path}", err=True)


def _document(result: Study, pods_file: Path, nodes_file: Path) -> dict[str, Any]:
    run = result.run
    return {
        "trace": {
            "pods_file": pods_file.name,
            "nodes_file": nodes_file.name,
            "pods": len(run.pods),
        },
        "seed": result.seed,
        "split_day": round(result.split / DAY, 4),
        "model": result.model.as_dict(),
        "replay": {
            "tries": run.tries,
            "misses": run.misses,
            "events": run.events,
            "nodes_used": len({p.node for p in run.placements if p is not None}),
            "peak_used": dict(
                zip(("gpu", "cpu", "memory"), (round(u, 4) for u in run.peak_used), strict=True)
            ),
        },
        "calibration": result.calibration.as_dict(),
        "judged": result.judged.as_dict(),
        "baseline": result.baseline.as_dict(),
        "observed_halves": result.drift_dict(),
    }


def _render(doc: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    model, run = doc["model"], doc["replay"]
    chances = ", ".join(f"{h:.1%}" for h in model["bind_chance_by_try"][:4])
    out.print(
        f"openb replay of {doc['trace']['pods']:,} pods ({doc['trace']['pods_file']}), "
        f"seed {doc['seed']}; calibrated on the {model['fitted_on_pods']:,} pods created "
        f"before day {doc['split_day']:g}, judged on the others",
        markup=False,
    )
    out.print(
        f"scheduler: a try every {model['period_s']:g} s; chance a try binds: {chances}, ... "
        f"({model['bind_chance_after']:.1%} after try {len(model['bind_chance_by_try'])})",
        markup=False,
    )
    out.print(
        f"replay: {run['tries']:,} tries, {run['misses']['blocked']:,} blocked, "
        f"{run['misses']['no-fit']:,} found no node; peak use: GPUs {run['peak_used']['gpu']:.1%}, "
        f"CPU {run['peak_used']['cpu']:.1%}, memory {run['peak_used']['memory']:.1%}",
        markup=False,
    )
    table = Table(header_style="bold")
    columns = ("pods", "scheduled", "never", "p50 s", "p90 s", "p99 s", "W1 s", "KS")
    table.add_column("half")
    for column in columns:
        table.add_column(column, justify="right")
    for label, key in (("calibration (in sample)", "calibration"),
                       ("judged (out of sample)", "judged"),
                       ("capacity alone (judged)", "baseline")):  # fmt: skip
        table.add_row(label, *_cells(doc[key]))
    out.print(table)
    drift = doc["observed_halves"]
    text = "each cell: observed / simulated"
    if drift["ks"] is not None:
        text += (
            f". The two halves' observed delays differ by W1 {drift['wasserstein1_s']:,.1f} s, "
            f"KS {drift['ks']:.3f}"
        )
    out.print(text, markup=False)


def _cells(f: dict[str, Any]) -> list[str]:
    def pair(obs: object, sim: object) -> str:
        return f"{_n(obs)} / {_n(sim)}"

    delay = f["delay_s"]
    return [
        f"{f['pods']:,}",
        pair(f["scheduled"]["observed"], f["scheduled"]["simulated"]),
        pair(f["never_scheduled"]["observed"], f["never_scheduled"]["simulated"]),
        *(pair(delay["observed"][q], delay["simulated"][q]) for q in ("p50", "p90", "p99")),
        "-" if f["wasserstein1_s"] is None else f"{f['wasserstein1_s']:,.1f}",
        "-" if f["ks"] is None else f"{f['ks']:.3f}",
    ]


def _n(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"
