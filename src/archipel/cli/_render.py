"""Rich tables for people; JSON lives in ``_output``. Imported only when printing tables."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from archipel.cli._output import _money
from archipel.core import CatalogSnapshot, Offer
from archipel.placement import OfferVerdict, Plan


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


def render_plan(console: Console, plan: Plan, snapshot: CatalogSnapshot) -> None:
    r = plan.request
    want = " or ".join(str(a) for a in r.accelerators)
    nodes = f" x {r.nodes} nodes" if r.nodes > 1 else ""
    where = f", countries {','.join(r.countries)}" if r.countries else ""
    console.print(
        Text.assemble(
            ("plan ", "bold"),
            (r.name, "bold cyan"),
            f": {want}{nodes} for {r.hours} h, data class ",
            (r.data_class, "bold"),
            f"{', spot tolerated' if r.spot else ''}{where}",
        )
    )
    if plan.placements:
        table = Table(show_lines=False, header_style="bold")
        for col, justify in [
            ("#", "right"),
            ("provider", "left"),
            ("region", "left"),
            ("country", "left"),
            ("instance", "left"),
            ("accelerators", "left"),
            ("price/h", "right"),
            ("total", "right"),
            ("market", "left"),
            ("jurisdiction", "left"),
        ]:
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for p in plan.placements:
            o = p.offer
            table.add_row(
                str(p.rank),
                o.provider,
                o.region or "-",
                o.country or "?",
                o.instance_type,
                _accel(o),
                f"{_price(p.price_per_hour * p.nodes)} {p.currency}",
                f"{_money(p.total_cost.quantize(Decimal('0.01')))} {p.currency}",
                "spot" if p.spot else "on-demand",
                _facts(snapshot, o.provider),
            )
        console.print(table)
    else:
        console.print("[bold red]no feasible placement[/]: every offer was rejected (see below)")
    if plan.rejections:
        rej = Table(title="rejected", title_justify="left", header_style="bold", show_lines=False)
        rej.add_column("reason")
        rej.add_column("offers", justify="right")
        rej.add_column("by")
        rej.add_column("example")
        for j in plan.rejections:
            label = f"{j.reason.value} ({j.reason.label})"
            style = "red" if j.unresolvable else ""
            rej.add_row(Text(label, style=style), f"{j.count:,}", j.plugin, j.example)
        console.print(rej)
    t = plan.trace
    console.print(
        f"[dim]searched {t.offers_seen:,} offers: {t.candidates:,} with the right accelerator, "
        f"{t.feasible_offers:,} feasible; ranked by total cost in {plan.comparison_currency} "
        f"({t.elapsed_ms:.1f} ms). Red reasons are policy: relaxing the request "
        "will not lift them.[/]"
    )


def render_explain(console: Console, verdicts: Sequence[OfferVerdict], currency: str) -> None:
    for v in verdicts:
        o = v.offer
        head = f"{o.key}" + (f" (zone {o.zone})" if o.zone else "")
        if not v.rejections:
            assert v.comparison_total is not None
            assert v.best_total is not None
            gap = v.comparison_total - v.best_total
            if v.rank == 1 or gap <= 0:
                console.print(
                    f"[green]{head}[/]: feasible and the cheapest "
                    f"({_money(v.comparison_total)} {currency})."
                )
            else:
                console.print(
                    f"[yellow]{head}[/]: feasible, ranks #{v.rank}: costs "
                    f"{_money(v.comparison_total.quantize(Decimal('0.01')))} {currency}, "
                    f"{_money(gap.quantize(Decimal('0.01')))} {currency} more than the winner."
                )
            continue
        console.print(f"[red]{head}[/]: rejected")
        for r in v.rejections:
            kind = "policy, unresolvable" if r.unresolvable else "request"
            console.print(f"  - [{r.plugin}] {r.message} [dim]({r.reason.value}; {kind})[/]")


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
