"""Rich tables for people; JSON lives in ``_output``. Imported only when printing tables."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from archipel.cli._output import FleetCents, _money, fleet_cents, solver_status
from archipel.core import CatalogSnapshot, Offer
from archipel.placement import OfferVerdict, Plan, PriceScore, ScoreBreakdown


def _price(value: Decimal) -> str:
    """Display form of an hourly price: at most four decimals (JSON keeps them all)."""
    return _money(value.quantize(Decimal("0.0001")) if value.as_tuple().exponent < -4 else value)  # type: ignore[operator]


def _accel(offer: Offer) -> str:
    if not offer.accelerator:
        return "-"
    n = offer.accelerator_count
    return f"{int(n) if n == int(n) else n}x {offer.accelerator}"


def _facts(snapshot: CatalogSnapshot, provider: str) -> str:
    f = snapshot.provider(provider)
    if not f.registered:
        return "not in registry"
    parts = [f"HQ {f.hq_country or '?'}", f"CLOUD Act: {f.cloud_act.value if f.cloud_act else '?'}"]
    if f.secnumcloud == "qualified":
        parts.append("SecNumCloud")
    iso = f.certification("iso27001")
    parts.append("ISO27001" if iso else ("no ISO27001" if iso is False else "ISO27001 ?"))
    if f.marketplace:
        parts.append("marketplace")
    return ", ".join(parts)


def _plan_heading(plan: Plan) -> Text:
    r = plan.request
    want = " or ".join(str(a) for a in r.accelerators)
    nodes = f" x {r.nodes} nodes" if r.nodes > 1 else ""
    where = f", countries {','.join(r.countries)}" if r.countries else ""
    return Text.assemble(
        ("plan ", "bold"),
        (r.name, "bold cyan"),
        f": {want}{nodes} for {r.hours} h, data class ",
        (r.data_class, "bold"),
        f"{', spot tolerated' if r.spot else ''}{where}",
    )


def _placements_table(plan: Plan, snapshot: CatalogSnapshot) -> Table:
    """The ranked placements, priced in the comparison currency.

    The price of one node-hour gets a column when a placement has several
    nodes; the offer's own price gets one when an offer is sold in another
    currency. Columns that would repeat another are left out.
    """
    from archipel.cli._documents import node_hour_in_comparison

    cur = plan.comparison_currency
    per_node = plan.request.nodes > 1
    foreign = any(p.currency != cur for p in plan.placements)
    table = Table(show_lines=False, header_style="bold")
    for col in ("#", "provider", "region", "country", "instance", "accelerators"):
        table.add_column(col, justify="right" if col == "#" else "left")
    if per_node:
        table.add_column(f"{cur}/node-h", justify="right")
    table.add_column(f"{cur}/h", justify="right")  # the whole placement: what is ranked
    table.add_column(f"{cur} total", justify="right")
    if foreign:
        table.add_column("offer/node-h", justify="right")
    table.add_column("market")
    table.add_column("jurisdiction")
    for p in plan.placements:
        o = p.offer
        node_hour = node_hour_in_comparison(snapshot, p)
        prices = [_price(node_hour)] if per_node else []
        prices += [_price(node_hour * p.nodes), _m(node_hour * p.nodes * p.hours)]
        prices += [f"{_price(p.price_per_hour)} {p.currency}"] if foreign else []
        table.add_row(
            str(p.rank),
            o.provider,
            o.region or "-",
            o.country or "?",
            o.instance_type,
            _accel(o),
            *prices,
            "spot" if p.spot else "on-demand",
            _facts(snapshot, o.provider),
        )
    return table


def _rejections_table(plan: Plan, coloured: bool) -> Table:
    rej = Table(title="rejected", title_justify="left", header_style="bold", show_lines=False)
    rej.add_column("reason")
    rej.add_column("offers", justify="right")
    rej.add_column("by")
    rej.add_column("example")
    for j in plan.rejections:
        label = f"{j.reason.value} ({j.reason.label})"
        if j.unresolvable and not coloured:
            label = f"* {label}"
        style = "red" if j.unresolvable else ""
        rej.add_row(Text(label, style=style), f"{j.count:,}", j.plugin, j.example)
    return rej


def rates_note(snapshot: CatalogSnapshot, currencies: set[str]) -> str:
    """How other currencies were converted: ``USD at 0.857265323618 EUR``, or empty."""
    cur = snapshot.comparison_currency
    others = sorted(currencies - {cur})
    return "; ".join(f"{c} at {snapshot.fx_rates[c]:f} {cur}" for c in others)


def _trace_line(plan: Plan, snapshot: CatalogSnapshot, coloured: bool) -> str:
    t = plan.trace
    shown = len(plan.placements)
    feasible = f"{t.feasible_placements:,} feasible"
    if t.feasible_offers != t.feasible_placements:
        feasible += f" ({t.feasible_offers:,} offers counting each zone)"
    if shown < t.feasible_placements:
        feasible += f", the {shown:,} cheapest shown (--top to see more)"
    rates = rates_note(snapshot, {p.currency for p in plan.placements})
    legend = f" Offers in {rates}." if rates else ""
    if any(j.unresolvable for j in plan.rejections):
        marked = "Red reasons" if coloured else "Reasons marked *"
        legend += f" {marked} are policy: relaxing the request will not lift them."
    return (
        f"[dim]searched {t.offers_seen:,} offers: {t.candidates:,} with the right accelerator, "
        f"{feasible}; ranked by price per hour of the whole placement in "
        f"{plan.comparison_currency} ({t.elapsed_ms:.1f} ms).{legend}[/]"
    )


def render_plan(console: Console, plan: Plan, snapshot: CatalogSnapshot) -> None:
    """The plan table, its rejections and the line that says what was searched."""
    console.print(_plan_heading(plan))
    if plan.placements:
        console.print(_placements_table(plan, snapshot))
    else:
        console.print("[bold red]no feasible placement[/]: every offer was rejected (see below)")
    coloured = console.color_system is not None
    if plan.rejections:
        console.print(_rejections_table(plan, coloured))
    console.print(_trace_line(plan, snapshot, coloured))


def _zone_groups(verdicts: Sequence[OfferVerdict]) -> list[tuple[OfferVerdict, list[str]]]:
    """Verdicts that differ only by zone, as one verdict and its zones (first seen first)."""
    groups: dict[tuple[Any, ...], tuple[OfferVerdict, list[str]]] = {}
    for v in verdicts:
        key = (
            v.offer.key,
            v.rank,
            v.comparison_total,
            v.scores,
            tuple((r.plugin, r.reason, r.message) for r in v.rejections),
        )
        group = groups.setdefault(key, (v, []))
        if v.offer.zone:
            group[1].append(v.offer.zone)
    return list(groups.values())


def render_explain(console: Console, verdicts: Sequence[OfferVerdict], currency: str) -> None:
    """One line per offer and outcome; zones with the same outcome share the line.

    A feasible offer's line gives its standing, then its score breakdown and,
    below the top rank, the winner's.
    """
    for v, zones in _zone_groups(verdicts):
        o = v.offer
        head = f"{o.key}" + (
            f" (zone{'s' if len(zones) > 1 else ''} {', '.join(zones)})" if zones else ""
        )
        if not v.rejections:
            console.print(_standing(v, head, currency))
            console.print(f"  [dim]{_score_line('score', v.scores)}[/]")
            if v.rank != 1:
                winner = _score_line("the winner's score", v.winner_scores)
                console.print(f"  [dim]{winner}[/]")
            continue
        console.print(f"[red]{head}[/]: rejected")
        for r in v.rejections:
            kind = "policy, unresolvable" if r.unresolvable else "request"
            console.print(
                f"  - {escape(f'[{r.plugin}]')} {escape(r.message)} "
                f"[dim]({r.reason.value}; {kind})[/]"
            )


def _standing(v: OfferVerdict, head: str, currency: str) -> str:
    """Where a feasible offer ranks and what it costs next to the winner."""
    assert v.comparison_total is not None
    assert v.best_total is not None
    assert v.scores is not None
    gap = v.comparison_total - v.best_total
    by_price = [p.plugin for p in v.scores.plugins] == [PriceScore.name]
    if by_price and (v.rank == 1 or gap <= 0):  # ranked on price alone: first is cheapest
        cost = f"{_money(v.comparison_total)} {currency}"
        return f"[green]{head}[/]: feasible and the cheapest ({cost})."
    total = _money(v.comparison_total.quantize(Decimal("0.01")))
    if v.rank == 1:
        return f"[green]{head}[/]: feasible and ranks first: costs {total} {currency}."
    more = "more" if gap >= 0 else "less"
    return (
        f"[yellow]{head}[/]: feasible, ranks #{v.rank}: costs {total} {currency}, "
        f"{_money(abs(gap).quantize(Decimal('0.01')))} {currency} {more} than the winner."
    )


def _score_line(label: str, breakdown: ScoreBreakdown | None) -> str:
    """``score 75 of 100: price 75 (weight 1)``: the total, then each plugin's part."""
    assert breakdown is not None
    parts = ", ".join(
        f"{p.plugin} {_score(p.score)} (weight {p.weight})" for p in breakdown.plugins
    )
    return f"{label} {_score(breakdown.total)} of 100: {parts}"


def _score(value: float) -> str:
    return f"{round(value, 3):g}"


def render_offers(
    console: Console, offers: Sequence[Offer], total: int, snapshot: CatalogSnapshot
) -> None:
    table = Table(header_style="bold")
    for col, justify in [
        ("provider", "left"),
        ("region", "left"),
        ("country", "left"),
        ("instance", "left"),
        ("accelerators", "left"),
        ("GPU mem", "right"),
        ("vCPU", "right"),
        ("RAM GiB", "right"),
        ("on-demand/h", "right"),
        ("spot/h", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in offers:
        table.add_row(
            o.provider,
            o.region or "-",
            o.country or "?",
            o.instance_type,
            _accel(o),
            f"{o.gpu_memory_gib:g} GiB" if o.gpu_memory_gib else "-",
            f"{o.vcpus:g}" if o.vcpus is not None else "-",
            f"{o.memory_gib:g}" if o.memory_gib is not None else "-",
            f"{_price(o.price_per_hour)} {o.currency}" if o.price_per_hour is not None else "-",
            f"{_price(o.spot_price_per_hour)} {o.currency}"
            if o.spot_price_per_hour is not None
            else "-",
        )
    console.print(table)
    shown = len(offers)
    more = f" (showing the {shown:,} cheapest; --limit to see more)" if shown < total else ""
    console.print(f"[dim]{total:,} offers match{more}[/]")


def _m(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def _assignments_table(plan: Any, cents: FleetCents) -> Table:
    table = Table(title="assignments", title_justify="left", header_style="bold")
    for col, justify in [
        ("workload", "left"),
        ("units", "right"),
        ("provider", "left"),
        ("region", "left"),
        ("country", "left"),
        ("instance", "left"),
        ("accelerators", "left"),
        ("market", "left"),
        ("offer price/node-h", "right"),
        ("cost", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    last = None
    for a, cost in zip(plan.assignments, cents.assignments, strict=True):
        p = a.option.placement
        o = p.offer
        table.add_row(
            a.workload if a.workload != last else "",
            str(a.units),
            o.provider,
            o.region or "-",
            o.country or "?",
            o.instance_type,
            _accel(o) + (f" x{p.nodes} nodes" if p.nodes > 1 else ""),
            "spot" if p.spot else "on-demand",
            f"{_price(p.price_per_hour)} {p.currency}",
            f"{_m(cost)} {plan.currency}",
        )
        last = a.workload
    return table


def _providers_table(plan: Any, cents: FleetCents) -> Table:
    prov = Table(title="providers", title_justify="left", header_style="bold")
    for col in [
        "provider",
        "usage",
        "GPU-h share",
        "spend share",
        "commitment due",
        "burned",
        "shortfall",
    ]:
        prov.add_column(col, justify="left" if col == "provider" else "right")
    for p, usage, shortfall in zip(
        plan.account.providers, cents.provider_usage, cents.provider_shortfall, strict=True
    ):
        prov.add_row(
            p.provider,
            _m(usage),
            f"{p.gpu_hours_share:.1%}",
            f"{p.spend_share:.1%}",
            "-" if p.commitment_due is None else _m(p.commitment_due),
            _m(p.burned),
            Text(_m(shortfall), style="red" if shortfall else ""),
        )
    return prov


def _fleet_total(plan: Any, cents: FleetCents, snapshot: CatalogSnapshot | None) -> str:
    if cents.total is None or cents.usage is None or cents.shortfall is None:
        return "no plan: nothing is placed, so there is no cost to give"
    line = (
        f"total [bold]{_m(cents.total)} {plan.currency}[/] = usage {_m(cents.usage)} + "
        f"commitment shortfall {_m(cents.shortfall)}"
    )
    if snapshot is not None:
        rates = rates_note(snapshot, {a.option.placement.currency for a in plan.assignments})
        line += f" (offers in {rates})" if rates else ""
    return line


def _fleet_problems(console: Console, plan: Any) -> None:
    for title, items in (("violations", plan.violations), ("why it is infeasible", plan.diagnosis)):
        if items:
            console.print(f"[bold red]{title}[/]:")
            for v in items:
                console.print(f"  - {escape(f'[{v.family}]')} {escape(v.message)}")
    for c in plan.unplaceable:
        console.print(f"[red]{c.workload.name}[/]: nothing feasible")
        for r in c.rejections[:5]:
            console.print(f"    {r.reason.value} x{r.count}: {r.example}")


def render_fleet(
    console: Console, plan: Any, snapshot: CatalogSnapshot | None = None, timings: bool = True
) -> None:
    """Assignments, providers against their commitments, the total and what went wrong."""
    verdict = "[green]feasible[/]" if plan.feasible else "[bold red]infeasible[/]"
    console.print(f"[bold]fleet {plan.name}[/]: {verdict}")
    cents = fleet_cents(plan)
    if plan.assignments:
        console.print(_assignments_table(plan, cents))
    if plan.account.providers and cents.total is not None:
        console.print(_providers_table(plan, cents))
    console.print(_fleet_total(plan, cents, snapshot))
    _fleet_problems(console, plan)
    console.print("[dim]" + solver_line(plan.solver, timings) + "[/]")


def render_policy_check(console: Console, doc: dict[str, Any]) -> None:
    """The table of ``policy check``: each data class, its rules, the offers it allows."""
    n = len(doc["data_classes"])
    console.print(
        f"[green]{escape(doc['source'])}[/]: valid policy [bold]{escape(doc['policy'])}[/], "
        f"{n} data class{'es' if n != 1 else ''}"
    )
    total = doc["gpu_offers"]
    table = Table(header_style="bold")
    table.add_column("data class")
    table.add_column("requires")
    table.add_column(f"GPU offers allowed (of {total:,})", justify="right")
    table.add_column("providers", justify="right")
    for c in doc["data_classes"]:
        rules = "\n".join(r["requires"] for r in c["rules"]) or "anything goes"
        table.add_row(
            c["name"], rules, f"{c['allowed_offers']:,}", str(len(c["allowed_providers"]))
        )
    console.print(table)


def solver_line(s: Any, timings: bool = True) -> str:
    """How the solver ended: ``optimal`` only at a zero gap, else ``feasible, gap 0.72%``."""
    status = solver_status(s)
    if status == "feasible" and s.gap:
        status += f", gap {s.gap:.2%}"
    parts = [f"solver {s.solver}: {status}"]
    if s.objective is not None and s.solver != "greedy":
        bound = "-" if s.bound is None else _m(s.bound)
        parts.append(f"objective {_m(s.objective)}, bound {bound}")
    if s.variables:
        parts.append(
            f"{s.variables:,} variables ({s.integer_variables:,} integer), "
            f"{s.constraints:,} constraints"
        )
    if timings:
        parts.append(f"{s.seconds:.2f} s")
    return "; ".join(parts)
