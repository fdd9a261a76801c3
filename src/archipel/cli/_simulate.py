"""``archipel simulate``: Archipel's decisions replayed on real traces.

``simulate spot`` is study 1 (a deadline job on spot, the *Can't Be Late* setup): it reads
availability traces, takes the prices from the catalog unless given, and prints each
policy's cost, instance hours, finish time and whether the deadline was met. ``simulate
replay`` (in ``_simulate_replay``) checks the simulator's queueing against a real cluster's.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from archipel.cli._common import (
    AsJson,
    PolicyFile,
    console,
    decimal_flag,
    exit_with,
    guard,
    load_catalog,
    load_policy,
)
from archipel.cli._simulate_replay import replay
from archipel.core import InputError

if TYPE_CHECKING:
    from archipel.core import CatalogSnapshot
    from archipel.sim import Outcome, SpotPrices, SpotTrace

simulate_app = typer.Typer(
    help="Replay Archipel's decisions on real traces (study 1: deadline jobs on spot).",
    no_args_is_help=True,
    add_completion=False,
)
simulate_app.command("replay")(replay)

#: the offers whose prices stand for the traces' p3.2xlarge (1x V100), first found wins: the
#: instance itself, then the 1x V100 offer at the same on-demand list price ($3.06/h)
PRICE_OFFERS = (("aws", "us-east-1", "p3.2xlarge"), ("azure", "eastus", "Standard_NC6s_v3"))


class Policy(StrEnum):
    on_demand = "on-demand"
    greedy = "greedy"
    uniform_progress = "uniform-progress"
    optimal = "optimal"
    archipel = "archipel"


def catalog_prices(snapshot: CatalogSnapshot) -> tuple[SpotPrices, str]:
    """The spot and on-demand prices of the first of :data:`PRICE_OFFERS` the catalog has."""
    from archipel.sim import SpotPrices

    table = snapshot.offers
    wanted = {(p, r, i): n for n, (p, r, i) in enumerate(PRICE_OFFERS)}
    found: dict[int, tuple[SpotPrices, str]] = {}
    sl = table.accelerator_slice("V100")
    for row in range(sl.start, sl.stop):
        offer = table.offer(row)
        rank = wanted.get((offer.provider, offer.region, offer.instance_type))
        if rank is None or rank in found:
            continue
        if offer.price_per_hour is None or offer.spot_price_per_hour is None:
            continue
        prices = SpotPrices(offer.spot_price_per_hour, offer.price_per_hour, offer.currency)
        found[rank] = (prices, f"catalog offer {offer.key} ({offer.source})")
    if not found:
        names = ", ".join("/".join(k) for k in PRICE_OFFERS)
        raise InputError(
            f"the catalog has no spot and on-demand price for {names}; "
            "give --spot-price and --on-demand-price"
        )
    return found[min(found)]


@simulate_app.command("spot")
def spot(
    trace: Annotated[
        list[Path],
        typer.Option(
            "--trace",
            metavar="FILE",
            help="Availability trace JSON (repeatable). Single-zone policies use the first; "
            "archipel uses them all.",
        ),
    ],
    job_hours: Annotated[
        str, typer.Option("--job-hours", metavar="H", help="Hours of compute the job needs.")
    ],
    deadline_hours: Annotated[
        str, typer.Option("--deadline-hours", metavar="D", help="Deadline, hours after start.")
    ],
    changeover_hours: Annotated[
        str,
        typer.Option(
            "--changeover-hours",
            metavar="C",
            help="Hours lost at each launch but the first (switch, preemption, zone move).",
        ),
    ] = "0.2",
    policy: Annotated[
        list[Policy] | None,
        typer.Option(
            "--policy",
            metavar="on-demand|greedy|uniform-progress|optimal|archipel",
            help="Policy to run (repeatable; default: all of them).",
        ),
    ] = None,
    start_hours: Annotated[
        str, typer.Option("--start-hours", metavar="S", help="Job start, hours into the trace.")
    ] = "0",
    spot_price: Annotated[
        str | None,
        typer.Option(
            "--spot-price", metavar="PRICE", help="Spot price per hour (default: catalog)."
        ),
    ] = None,
    on_demand_price: Annotated[
        str | None,
        typer.Option(
            "--on-demand-price",
            metavar="PRICE",
            help="On-demand price per hour (default: catalog).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Run a deadline job on spot availability traces under each policy.

    Prints per policy: cost, on-demand and spot hours, finish time, deadline met. The same
    inputs always give the same output. Exit status: 0, or 2 on bad input.
    """
    from archipel.sim import POLICIES, SpotJob, SpotPrices, load_trace, simulate

    def run() -> None:
        job = SpotJob.from_hours(
            decimal_flag(job_hours),
            decimal_flag(deadline_hours),
            decimal_flag(changeover_hours),
            decimal_flag(start_hours),
        )
        traces = [load_trace(p) for p in trace]
        if spot_price is not None and on_demand_price is not None:
            prices = SpotPrices(decimal_flag(spot_price), decimal_flag(on_demand_price))
            source = "--spot-price and --on-demand-price"
        else:
            prices, source = catalog_prices(load_catalog())
            if spot_price is not None or on_demand_price is not None:
                prices = SpotPrices(
                    decimal_flag(spot_price) if spot_price is not None else prices.spot,
                    decimal_flag(on_demand_price)
                    if on_demand_price is not None
                    else prices.on_demand,
                    prices.currency,
                )
                source += ", overridden on the command line"
        chosen = {p.value for p in policy} if policy else set(POLICIES)
        names = [name for name in POLICIES if name in chosen]
        outcomes = simulate(job, traces, prices, names)
        if as_json:
            typer.echo(json.dumps(_document(job, traces, prices, source, outcomes), indent=2))
        else:
            _render(job, [t.name for t in traces], prices, source, outcomes)

    guard(run)


def _document(
    job: object, traces: list[SpotTrace], prices: SpotPrices, source: str, outcomes: list[Outcome]
) -> dict[str, object]:
    from archipel.sim._spot import SpotJob, hours

    assert isinstance(job, SpotJob)
    return {
        "job": {
            "job_hours": str(hours(job.work_s)),
            "deadline_hours": str(hours(job.deadline_s)),
            "changeover_hours": str(hours(job.changeover_s)),
            "start_hours": str(hours(job.start_s)),
        },
        "traces": [{"name": t.name, "gap_seconds": t.gap_seconds} for t in traces],
        "prices": {
            "spot": str(prices.spot),
            "on_demand": str(prices.on_demand),
            "currency": prices.currency,
            "source": source,
        },
        "policies": [o.as_dict() for o in outcomes],
    }


def _h(seconds: int) -> str:
    from archipel.sim._spot import hours

    return f"{hours(seconds).normalize():f}"


def _render(
    job: object, names: list[str], prices: SpotPrices, source: str, outcomes: list[Outcome]
) -> None:
    from rich.table import Table

    from archipel.sim._spot import SpotJob, hours

    assert isinstance(job, SpotJob)
    out = console()
    out.print(
        f"job {_h(job.work_s)} h, deadline {_h(job.deadline_s)} h, changeover "
        f"{_h(job.changeover_s)} h, start {_h(job.start_s)} h; traces: {', '.join(names)}",
        highlight=False,
    )
    out.print(
        f"prices per hour: spot {prices.spot} {prices.currency}, on-demand "
        f"{prices.on_demand} {prices.currency} ({source})",
        highlight=False,
    )
    table = Table(header_style="bold")
    for col in (
        "policy",
        f"cost {prices.currency}",
        "saving",
        "on-demand h",
        "spot h",
        "finish h",
        "deadline met",
        "changeovers",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    full = job.work_s * prices.on_demand / 3600
    for o in outcomes:
        saving = "-" if not full else f"{(1 - o.cost / full) * 100:.1f}%"
        table.add_row(
            o.policy,
            f"{o.cost:.2f}",
            saving,
            f"{hours(o.on_demand_s):.2f}",
            f"{hours(o.spot_s):.2f}",
            f"{hours(o.finish_s):.2f}",
            "yes" if o.deadline_met else "NO",
            str(o.changeovers),
        )
    out.print(table)


# -- scenarios (study 3: the real control plane on simulated sites) ----------------------------


class _ScenarioGroup(typer.core.TyperGroup):
    """``archipel simulate FILE.yaml`` is ``archipel simulate scenario FILE.yaml``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0].endswith((".yaml", ".yml")):
            args = ["scenario", *args]
        return super().resolve_command(ctx, args)


simulate_app.info.cls = _ScenarioGroup


@simulate_app.command("scenario")
def scenario(
    file: Annotated[
        Path,
        typer.Argument(
            help="Scenario YAML: a trace window, sites, outages, data classes, strategies."
        ),
    ],
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Draw outages and data classes with this seed instead."),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            max=1000,
            help="Run each strategy under this many seeds (the seed, then the next ones) and "
            "show each figure's mean and range over them.",
        ),
    ] = 1,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes for --seeds (default: one per core)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run the --seeds sweep on a Ray cluster instead of local processes: its "
            "address (HOST:PORT, ray://HOST:PORT or auto), or local to start one here. "
            "Needs archipel[ray].",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Also write the results as one self-contained HTML page (plots, no CDN).",
        ),
    ] = None,
    policy: PolicyFile = None,
    as_json: AsJson = False,
) -> None:
    """Run a portfolio of real GPU jobs through the control plane under each strategy.

    Each strategy is the same control plane (placement engine, reconciler, recovery) on
    its own set of simulated sites, with the same jobs and outages. Prints per strategy:
    jobs done, refused and lost, cost, GPU-hours, lost GPU-hours, waits, recovery,
    spend concentration and compliance violations (a check apart from the policy
    engine: none is expected). The same file and seed give the same output.
    Exit status: 0; 1 when a compliance violation was found; 2 on bad input.
    """
    from archipel.cli._config import read_yaml_documents
    from archipel.sim._openb import load_openb
    from archipel.sim._portfolio import parse_scenario, run_scenario

    def run() -> int:
        documents = read_yaml_documents(file)
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise InputError(f"{file}: give one YAML mapping (name, trace, sites, strategies)")
        doc = documents[0] if seed is None else {**documents[0], "seed": seed}
        parsed = parse_scenario(doc, str(file), file.parent, load_openb)
        if ray_address is not None and seeds < 2:
            raise InputError("--ray runs a sweep: give --seeds 2 or more")
        if seeds > 1:
            return _sweep(parsed, seeds, workers or os.cpu_count() or 1, policy, as_json, report,
                          ray_address)  # fmt: skip
        outcomes = run_scenario(parsed, load_catalog(), load_policy(policy))
        body = _scenario_document(parsed, outcomes)
        _write_report(report, body)
        if as_json:
            typer.echo(json.dumps(body, indent=2))
        else:
            _render_scenario(console(), body)
        return 1 if any(o["violations"] for o in body["strategies"]) else 0

    exit_with(guard(run))


def catalog_and_policy(policy: Path | None) -> tuple[Any, Any]:
    """What a sweep's worker processes load once each (picklable with its argument)."""
    return load_catalog(), load_policy(policy)


def _write_report(path: Path | None, doc: dict[str, Any]) -> None:
    """The page of ``doc`` into ``path``, replaced only once fully written."""
    if path is None:
        return
    from archipel.cli._report import atomic
    from archipel.sim._report import render_scenario_html

    page = render_scenario_html(doc)
    with atomic(path) as out:
        out.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {path}", err=True)


def _sweep(
    parsed: Any,
    count: int,
    workers: int,
    policy: Path | None,
    as_json: bool,
    report: Path | None,
    ray_address: str | None = None,
) -> int:
    from archipel.sim._sweep import summarize, sweep, sweep_on_ray

    first = parsed.spec.seed
    seeds = list(range(first, first + count))
    loader = functools.partial(catalog_and_policy, policy)
    if ray_address is not None:
        results = sweep_on_ray(parsed, seeds, loader, ray_address)
    else:
        results = sweep(parsed, seeds, loader, workers)
    summary = summarize(results)
    body = {
        **{k: v for k, v in _scenario_document(parsed, []).items() if k != "strategies"},
        "seeds": seeds,
        "runs": [{"seed": seed, **_outcome_document(o)} for _, seed, o in results],
        "summary": [_summary_document(s) for s in summary],
    }
    _write_report(report, body)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    else:
        _render_sweep(console(), body)
    return 1 if any(s.violations for s in summary) else 0


def _summary_document(s: Any) -> dict[str, Any]:
    figures = ("cost", "per_done_gpu_hour", "done", "refused", "failed", "lost_gpu_hours",
               "wait_p95_s", "dark_hours")  # fmt: skip
    return {
        "strategy": s.strategy,
        "seeds": s.seeds,
        "currency": s.currency,
        **{
            f: {
                "mean": round(getattr(s, f).mean, 4),
                "low": round(getattr(s, f).low, 4),
                "high": round(getattr(s, f).high, 4),
            }
            for f in figures
        },
        "violations": s.violations,
    }


def _render_sweep(out: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    seeds = doc["seeds"]
    out.print(
        f"{doc['scenario']}: {doc['trace']['jobs']} jobs, seeds {seeds[0]} to {seeds[-1]}: "
        "each figure's mean over the seeds, and its lowest and highest",
        markup=False,
    )
    table = Table(header_style="bold")
    columns = ("strategy", "cost", "per done GPU-h", "done", "refused", "failed",
               "lost GPU-h", "wait p95", "all down", "violations")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "strategy" else "right")

    def cell(f: dict[str, float], fmt: Callable[[float], str]) -> str:
        return f"{fmt(f['mean'])} ({fmt(f['low'])} to {fmt(f['high'])})"

    for s in doc["summary"]:
        money = f"{{:,.2f}} {s['currency']}".format
        table.add_row(
            s["strategy"],
            cell(s["cost"], money),
            cell(s["per_done_gpu_hour"], "{:,.2f}".format),
            cell(s["done"], "{:.0f}".format),
            cell(s["refused"], "{:.0f}".format),
            cell(s["failed"], "{:.0f}".format),
            cell(s["lost_gpu_hours"], "{:,.2f}".format),
            cell(s["wait_p95_s"], lambda v: _duration(v)),
            cell(s["dark_hours"], lambda v: _duration(v * 3600)),
            str(s["violations"]),
        )
    out.print(table)


def _outcome_document(o: Any) -> dict[str, Any]:
    return {
        "strategy": o.strategy,
        "sites": list(o.sites),
        "jobs": o.jobs,
        "done": o.done,
        "refused": o.refused,
        "failed": o.failed,
        "unfinished": o.unfinished,
        "currency": o.currency,
        "cost": str(o.cost),
        "gpu_hours": str(o.gpu_hours),
        "done_gpu_hours": str(o.done_gpu_hours),
        "lost_gpu_hours": str(o.lost_gpu_hours),
        "wait_p50_s": o.wait_p50_s,
        "wait_p95_s": o.wait_p95_s,
        "recovery_mean_s": None if o.recovery_mean_s is None else round(o.recovery_mean_s, 3),
        "recoveries": o.recoveries,
        "outages": o.outages,
        "dark_hours": o.dark_hours,
        "spend_share": {p: str(v) for p, v in o.spend_share.items()},
        "net_cost": str(o.net_cost),
        "shortfall": str(o.shortfall),
        "total_cost": str(o.total_cost),
        "violations": list(o.violations),
        "reasons": dict(o.reasons),
        "events": o.events,
        "rounds": o.rounds,
    }


def _scenario_document(parsed: Any, outcomes: list[Any]) -> dict[str, Any]:
    spec = parsed.spec
    jobs = parsed.jobs
    return {
        "scenario": spec.name,
        "seed": spec.seed,
        "trace": {
            "source": Path(jobs.source).name,
            "first_day": spec.trace.first_day,
            "days": spec.trace.days,
            "jobs": len(jobs.jobs),
            "skipped_multi_gpu": jobs.skipped_multi_gpu,
            "skipped_unscheduled": jobs.skipped_unscheduled,
        },
        "commitments": [
            {
                "provider": c.provider,
                "amount": str(c.amount),
                "currency": c.currency,
                "discount": str(c.discount),
            }
            for c in spec.commitments
        ],
        "strategies": [_outcome_document(o) for o in outcomes],
    }


def _render_scenario(out: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    t = doc["trace"]
    out.print(
        f"{doc['scenario']}: {t['jobs']} one-GPU jobs of {t['source']} (days {t['first_day']:g} "
        f"to {t['first_day'] + t['days']:g}; {t['skipped_multi_gpu']} multi-GPU and "
        f"{t['skipped_unscheduled']} never-scheduled pods left out), seed {doc['seed']}",
        markup=False,
    )
    committed = bool(doc.get("commitments"))
    if committed:
        out.print(
            "commitments: "
            + "; ".join(
                f"{c['provider']} {Decimal(c['amount']):,.2f} {c['currency']}"
                + (f" at {Decimal(c['discount']):.0%} off" if Decimal(c["discount"]) else "")
                for c in doc["commitments"]
            )
            + "; paid: usage less the discounts, plus what was promised and not spent (owed)",
            markup=False,
        )
    table = Table(header_style="bold")
    money = ("paid", "owed") if committed else ("cost",)
    columns = ("strategy", "done", "refused", "failed", *money, "per done GPU-h", "GPU-h",
               "lost GPU-h", "wait p95", "recovery", "outages", "all down",
               "top provider", "violations")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for s in doc["strategies"]:
        shares = s["spend_share"]
        top = max(shares, key=lambda p: Decimal(shares[p])) if shares else None
        paid = s["total_cost"] if committed else s["cost"]
        cells = [f"{Decimal(paid):,.2f} {s['currency']}"]
        if committed:
            cells.append(f"{Decimal(s['shortfall']):,.2f}")
        table.add_row(
            s["strategy"],
            f"{s['done']}/{s['jobs']}",
            str(s["refused"]),
            str(s["failed"]),
            *cells,
            _per(paid, s["done_gpu_hours"]),
            s["gpu_hours"],
            s["lost_gpu_hours"],
            _duration(s["wait_p95_s"]),
            "-" if s["recovery_mean_s"] is None else _duration(s["recovery_mean_s"]),
            str(s["outages"]),
            _duration(s["dark_hours"] * 3600),
            "-" if top is None else f"{top} {Decimal(shares[top]):.0%}",
            str(len(s["violations"])),
        )
    out.print(table)
    for s in doc["strategies"]:
        for reason, count in s["reasons"].items():
            out.print(f"{s['strategy']}: {count} failed: {reason}", markup=False)


def _per(cost: str, hours: str) -> str:
    return f"{Decimal(cost) / Decimal(hours):,.2f}" if Decimal(hours) else "-"


def _duration(seconds: float) -> str:
    from archipel.sim import duration

    return duration(seconds)


# -- serving on spot (study 2) -----------------------------------------------------------------


class ServePolicy(StrEnum):
    on_demand = "on-demand"
    spot = "spot"
    spot_hedge = "spot-hedge"


@simulate_app.command("serve")
def serve(
    trace: Annotated[
        list[Path],
        typer.Option(
            "--trace",
            metavar="FILE",
            help="A zone's spot availability trace JSON (repeatable): `spot` uses the first, "
            "`spot-hedge` them all.",
        ),
    ],
    requests: Annotated[
        Path,
        typer.Option(
            "--requests",
            metavar="FILE",
            help="LLM requests: CSV with TIMESTAMP, ContextTokens, GeneratedTokens (the "
            "Azure LLM inference trace); looped to cover the time simulated.",
        ),
    ],
    hours: Annotated[
        float | None,
        typer.Option("--hours", min=0.01, help="Hours to simulate (default: the traces')."),
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas wanted.")] = 4,
    slots: Annotated[
        int, typer.Option("--slots", min=1, help="Requests a replica serves at once.")
    ] = 16,
    policy: Annotated[
        list[ServePolicy] | None,
        typer.Option("--policy", help="Policies to run (default: all three)."),
    ] = None,
    spot_price: Annotated[
        str, typer.Option("--spot-price", metavar="PRICE", help="Per replica-hour.")
    ] = "0.9",
    on_demand_price: Annotated[
        str, typer.Option("--on-demand-price", metavar="PRICE", help="Per replica-hour.")
    ] = "3.06",
    data_class: Annotated[
        str,
        typer.Option(
            "--data-class",
            metavar="CLASS",
            help="The data class the service serves: the engine places replicas only where "
            "its policy allows.",
        ),
    ] = "internal",
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-file", metavar="FILE", help="Policy YAML (default: the shipped policy)."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Also write the results as one self-contained HTML page: cost against "
            "availability, replicas ready and preemptions over time, cumulative cost.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Serve an LLM from replicas on spot across zones, on real traces, under each policy.

    Each zone is a spot site and each region an on-demand site, as the control plane
    declares them, and every replica is placed by its placement engine under the data
    class's policy.

    Prints per policy: cost and its saving against all on-demand, spot and on-demand
    replica-hours, availability (time with all the replicas wanted ready, and with one),
    request latency percentiles and requests that waited too long. Exit status: 0, or
    2 on bad input.
    """
    from archipel.sim import load_trace
    from archipel.sim._serve import (
        SERVE_POLICIES,
        ServeSpec,
        load_llm_trace,
        placer_for,
        simulate_serving,
    )

    def run() -> dict[str, Any]:
        zones = [load_trace(p) for p in trace]
        arrivals = load_llm_trace(requests)
        spec = ServeSpec(
            replicas=replicas,
            slots=slots,
            spot_price=decimal_flag(spot_price),
            on_demand_price=decimal_flag(on_demand_price),
        )
        chosen = [p.value for p in policy] if policy else list(SERVE_POLICIES)
        snapshot, rules = catalog_and_policy(policy_file)
        placer = placer_for(zones, spec, snapshot, rules, data_class=data_class)

        def one(name: str) -> Any:
            return simulate_serving(zones, arrivals, spec, name, hours, placer=placer)

        outcomes = [one(p) for p in chosen]
        baseline = (
            one("on-demand").cost
            if "on-demand" not in chosen
            else next(o.cost for o in outcomes if o.policy == "on-demand")
        )
        doc = {
            "zones": [t.name for t in zones],
            "requests": requests.name,
            "replicas": replicas,
            "slots": slots,
            "data_class": data_class,
            "sites": {
                "spot": placer.zone_names,
                "allowed": [placer.zone_names[z] for z in sorted(placer.allowed)],
            },
            "policies": [
                {
                    "policy": o.policy,
                    "cost": str(o.cost),
                    "saving": None if not baseline else f"{1 - o.cost / baseline:.4f}",
                    "spot_hours": str(o.spot_hours),
                    "on_demand_hours": str(o.on_demand_hours),
                    "available": round(o.available, 4),
                    "up": round(o.up, 4),
                    "requests": o.requests,
                    "latency_s": {
                        "p50": _rounded(o.p50),
                        "p90": _rounded(o.p90),
                        "p99": _rounded(o.p99),
                    },
                    "slo_missed": o.slo_missed,
                    "preemptions": o.preemptions,
                    "events": o.events,
                    "placements": {"decisions": o.decisions, "engine_calls": o.engine_calls},
                }
                for o in outcomes
            ],
        }
        if report is not None:
            from archipel.cli._report import atomic
            from archipel.sim._serve_report import render_serve_html

            with atomic(report) as out:
                out.write_text(render_serve_html(doc, outcomes), encoding="utf-8")
            typer.echo(f"wrote {report}", err=True)
        return doc

    doc = guard(run)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    out = console()
    out.print(
        f"{doc['replicas']} replicas of {doc['slots']} slots, requests of {doc['requests']}, "
        f"spot in {', '.join(doc['zones'])}",
        markup=False,
    )
    table = Table(header_style="bold")
    for column in ("policy", "cost", "vs on-demand", "spot h", "on-demand h", "available",
                   "p50", "p99", "waited > 10 s", "preemptions"):  # fmt: skip
        table.add_column(column, justify="left" if column == "policy" else "right")
    for p in doc["policies"]:
        saving = "-" if p["saving"] is None else f"{-Decimal(p['saving']):+.0%}"
        table.add_row(
            p["policy"],
            p["cost"],
            saving,
            p["spot_hours"],
            p["on_demand_hours"],
            f"{p['available']:.2%}",
            _seconds(p["latency_s"]["p50"]),
            _seconds(p["latency_s"]["p99"]),
            f"{p['slo_missed'] / max(p['requests'], 1):.1%}",
            str(p["preemptions"]),
        )
    out.print(table)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
