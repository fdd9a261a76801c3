"""The report as one self-contained HTML page: inline CSS, inline SVG plots, no script.

The page loads nothing: no stylesheet, font, script or image from anywhere
(it opens offline, from a mail attachment or a shared drive). The plots are
drawn by matplotlib's SVG backend, imported here only when a report is drawn,
so no other command pays for it. Plots are pictures of the figures (drawn in
floating point); every number printed on the page is the exact figure, rounded
for reading only.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from archipel.ledger._report import (
    EXPOSED,
    CommitmentFigure,
    Ranked,
    Report,
    Share,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: provider colours, in order of spend (colour-blind safe: Okabe-Ito, then greys)
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#7F7F7F",
    "#BBBBBB",
)
JURISDICTION_COLOURS = {
    "EU/EEA": "#0072B2",
    "adequacy": "#56B4E9",
    "US": "#D55E00",
    "other": "#E69F00",
    "unknown": "#BBBBBB",
}
EXPOSURE_COLOURS = {
    "yes": "#D55E00",
    "via-parent": "#E69F00",
    "unclear": "#F0E442",
    "no": "#009E73",
    "unknown": "#BBBBBB",
}
#: providers drawn in their own colour in the monthly plot; the rest are summed as "others"
SHOWN_PROVIDERS = 9

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.sub{color:#5b6475;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;
margin:16px 0}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:20px;margin-top:2px}.card span{color:#5b6475;font-size:12px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;
box-shadow:0 1px 2px #0001}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:900px){.grid{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}
th,td{padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{color:#5b6475;font-weight:600}
svg{max-width:100%;height:auto}
.alerts{list-style:none;padding:0;margin:8px 0 0}
.alerts li{padding:6px 10px;border-radius:6px;margin:4px 0;border-left:4px solid}
.critical{background:#fdecea;border-color:#c0392b}.warning{background:#fff4e0;
border-color:#e69f00}.info{background:#eaf3fb;border-color:#0072b2}
.ok{color:#1e7d4f}.over{color:#c0392b;font-weight:600}
.bar{background:#e5e7eb;border-radius:4px;height:10px;position:relative;min-width:120px}
.bar i{position:absolute;left:0;top:0;bottom:0;border-radius:4px;background:#0072B2}
.bar i.over{background:#c0392b}
.note{color:#5b6475;font-size:12px}
"""


@dataclass(frozen=True, slots=True)
class Plots:
    """The report's plots of spend, each a ``<figure>`` holding its SVG; ``None`` (and no
    commitment plot) where there is nothing to draw. The page of ``archipel report`` and
    the console's spend view show these same drawings."""

    monthly: str | None
    commitments: tuple[str, ...] = ()
    concentration: str | None = None
    jurisdiction: str | None = None


def draw_plots(report: Report, *, monthly_only: bool = False) -> Plots:
    """The plots of ``report``: spend per month by provider, and unless ``monthly_only``
    each commitment's burn, the concentration and the jurisdiction shares. A commitment
    is drawn even before anything was spent: its burn line, ramp and planned position say
    where it should go."""
    colours = provider_colours(report)
    spent = bool(report.by_month)
    monthly = monthly_plot(report, colours) if spent else None
    if monthly_only:
        return Plots(monthly)
    return Plots(
        monthly,
        commitments=tuple(
            commitment_plot(c, colours.get(c.provider, PALETTE[0]), report.today)
            for c in report.commitments
        ),
        concentration=concentration_plot(report) if spent and report.providers else None,
        jurisdiction=jurisdiction_plot(report) if spent else None,
    )


def render_html(report: Report) -> str:
    """The whole page for ``report``."""
    plots = draw_plots(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Archipel spend report, {_e(_period(report))}</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(report),
        _monthly_section(report, plots),
        _commitments_section(report, plots),
        _concentration_section(report, plots),
        _jurisdiction_section(report, plots),
        _top_section(report),
        _budgets_section(report),
        _footer(report),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


# --- text ----------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def money(value: Decimal, currency: str | None = None) -> str:
    text = f"{value.quantize(Decimal('0.01'), ROUND_HALF_EVEN):,}"
    return f"{text} {currency}" if currency else text


def _short(value: float) -> str:
    """12.3M, 450k: an axis label."""
    for bound, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            return f"{value / bound:.3g}{suffix}"
    return f"{value:.3g}"


def percent(share: Decimal) -> str:
    return f"{(share * 100).quantize(Decimal('0.1'), ROUND_HALF_EVEN)}%"


def quantity(value: Decimal | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_EVEN):,}"


def _period(report: Report) -> str:
    t = report.totals
    if t.first is None or t.last is None:
        return "no entries"
    return f"{t.first:%Y-%m-%d} to {t.last:%Y-%m-%d}"


def _table(
    header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()
) -> str:
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _header(report: Report) -> str:
    t = report.totals
    exposed = report.exposed
    eu = next((s for s in report.jurisdictions if s.name == "EU/EEA"), None)
    cards = [
        ("spend", money(t.spend, report.currency)),
        ("GPU-hours", quantity(t.gpu_hours)),
        ("tokens in / out", f"{t.input_tokens:,} / {t.output_tokens:,}"),
        ("entries", f"{t.entries:,}"),
        ("spend in the EU/EEA", percent(eu.spend_share) if eu else "-"),
        ("spend CLOUD Act-exposed", percent(exposed.spend_share)),
    ]
    card_html = "".join(
        f'<div class="card"><span>{_e(k)}</span><b>{_e(v)}</b></div>' for k, v in cards
    )
    alerts = "".join(
        f'<li class="{_e(a.severity)}"><b>{_e(a.severity)}</b> {_e(a.message)}</li>'
        for a in report.alerts
    )
    alert_html = (
        f'<ul class="alerts">{alerts}</ul>'
        if alerts
        else '<p class="ok">No alert: commitments, concentration and budgets are within bounds.</p>'
    )
    return (
        "<header><h1>Spend report</h1>"
        f'<p class="sub">{_e(_period(report))} · in {_e(report.currency)} · as of '
        f"{report.today.isoformat()} · generated {report.generated_at:%Y-%m-%d %H:%M} UTC</p>"
        f'<div class="cards">{card_html}</div>'
        f"<section><h2>Alerts ({len(report.alerts)})</h2>{alert_html}</section></header>"
    )


def _footer(report: Report) -> str:
    return (
        '<p class="note">Money is summed exactly and converted into '
        f"{_e(report.currency)} at the catalog's exchange rates, as "
        "<code>archipel ledger show --currency</code> does; an entry counts in the month it "
        "starts in. Jurisdictions and CLOUD Act exposure come from the catalog's provider "
        "registry and jurisdiction facts: a risk screen, not legal advice. Commitment "
        f"forecasts: {_e(report.forecast_source)}.</p>"
    )


# --- plots ---------------------------------------------------------------------------------


def provider_colours(report: Report) -> dict[str | None, str]:
    ranked = [s.name for s in report.providers]
    colours: dict[str | None, str] = {}
    for i, name in enumerate(ranked):
        colours[None if name == "unknown" else name] = PALETTE[min(i, len(PALETTE) - 1)]
    return colours


def _figure(
    width: float, height: float, *, left: float = 0.6, bottom: float = 0.4, top: float = 0.3
) -> Figure:
    """A figure of ``width`` x ``height`` inches with fixed margins (in inches): a layout
    engine would draw every figure twice."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width, right=1 - 0.15 / width, bottom=bottom / height, top=1 - top / height
    )
    return fig


def _svg_document(fig: Figure, name: str) -> str:
    """The figure as a standalone SVG file, the same bytes on every run: no date, no
    metadata, no comment, element ids salted with ``name``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = re.sub(r"<metadata>.*?</metadata>", "", buffer.getvalue(), flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def _svg(fig: Figure, name: str) -> str:
    """The figure as an inline ``<svg>`` element: no prolog, no metadata, no namespace URL."""
    text = _svg_document(fig, name)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text[text.index("<svg") :])
    return f'<figure role="img" aria-label="{_e(name)}">{text}</figure>'


def _rects(
    ax: Any, rects: Sequence[tuple[float, float, float, float]], colours: Sequence[str]
) -> None:
    """Bars as one collection of rectangles ``(x0, y0, x1, y1)``: one artist for all of
    them, where ``bar`` makes one per bar (a tenth of the drawing time)."""
    from matplotlib.collections import PolyCollection

    verts = [[(x0, y0), (x0, y1), (x1, y1), (x1, y0)] for x0, y0, x1, y1 in rects]
    ax.add_collection(PolyCollection(verts, facecolors=list(colours), linewidths=0))


def _legend(ax: Any, items: Sequence[tuple[str, str]], **kwargs: Any) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colour, label=label) for label, colour in items]
    ax.legend(handles=handles, fontsize=kwargs.pop("fontsize", 7), frameon=False, **kwargs)


def _label_width(rows: Sequence[Share | Ranked]) -> float:
    """Inches of left margin for labels as long as the rows' names (8-point text)."""
    longest = max((len(r.name or "(none)") for r in rows), default=4)
    return min(3.0, 0.25 + 0.075 * longest)


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)


def _money_axis(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _p: _short(v))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def monthly_plot(report: Report, colours: dict[str | None, str]) -> str:
    """Spend per month, stacked by provider (the nine largest in their own colour, the rest
    as "others"): a ``<figure>`` with its SVG. The report must have entries."""
    months = list(report.months)
    shown = [s.name for s in report.providers][:SHOWN_PROVIDERS]
    series: dict[str, list[float]] = {}
    index = {m: i for i, m in enumerate(months)}
    for m in report.by_month:
        name = m.provider if m.provider is not None else "unknown"
        key = name if name in shown else "others"
        series.setdefault(key, [0.0] * len(months))[index[m.month]] += float(m.spend)
    fig = _figure(11, 3.6, left=0.8, top=0.4)
    ax = fig.add_subplot()
    bottom = [0.0] * len(months)
    x = list(range(len(months)))
    rects: list[tuple[float, float, float, float]] = []
    fills: list[str] = []
    legend: list[tuple[str, str]] = []
    for name in [*shown, "others"]:
        values = series.get(name)
        if values is None:
            continue
        colour = colours.get(None if name == "unknown" else name, "#BBBBBB")
        legend.append((name, colour))
        for i, v in enumerate(values):
            rects.append((i - 0.4, bottom[i], i + 0.4, bottom[i] + v))
            fills.append(colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _rects(ax, rects, fills)
    ax.set_xlim(-0.6, len(months) - 0.4)
    ax.set_ylim(0, max(bottom) * 1.05 or 1)
    ax.set_xticks(
        x, [f"{m:%b %Y}" if m.month == 1 or i == 0 else f"{m:%b}" for i, m in enumerate(months)]
    )
    _style(ax)
    _money_axis(ax)
    ax.set_ylabel(f"spend per month ({report.currency})", fontsize=9)
    _legend(ax, legend, fontsize=8, ncols=len(legend), loc="lower left", bbox_to_anchor=(0, 1))
    return _svg(fig, "spend by provider per month")


def _monthly_section(report: Report, plots: Plots) -> str:
    if plots.monthly is None:
        return "<section><h2>Spend by provider</h2><p>The ledger has no entries.</p></section>"
    totals = _table(
        ["provider", f"spend ({report.currency})", "GPU-hours", "share of spend"],
        [
            (_e(s.name), money(s.spend), quantity(s.gpu_hours), percent(s.spend_share))
            for s in report.providers
        ],
        numeric=(1, 2, 3),
    )
    return f"<section><h2>Spend by provider, per month</h2>{plots.monthly}{totals}</section>"


def _month_end(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _day(d: date) -> float:
    """A date as a number on a plot's axis (days since 0001-01-01): no date converter."""
    return float(d.toordinal())


def commitment_plot(c: CommitmentFigure, colour: str, today: date) -> str:
    fig = _figure(5.6, 3.0)
    ax = fig.add_subplot()
    start, end = _day(c.start), _day(c.end)
    ax.plot([start, end], [0, float(c.amount)], "--", color="#7F7F7F", lw=1, label="burn line")
    if c.ramp:
        xs = [start] + [_day(d) for d, _ in c.ramp]
        ys = [0.0] + [float(v) for _, v in c.ramp]
        ax.step(xs, ys, where="post", color="#CC79A7", lw=1, label="ramp minimum")
    if c.months:
        xs = [start] + [_day(min(_month_end(m), c.end)) for m in c.months]
        ys = [0.0] + [float(v) for v in c.spent]
        ax.plot(xs, ys, color=colour, lw=2, label="spent")
    f = c.forecast
    if f is not None and f.months:
        fx = [_day(min(_month_end(m), c.end)) for m in f.months]
        ax.fill_between(
            fx,
            [float(v) for v in f.low],
            [float(v) for v in f.high],
            color=colour,
            alpha=0.18,
            lw=0,
            label=f"forecast {f.level:.0%}",
        )
        ax.plot(fx, [float(v) for v in f.mean], ":", color=colour, lw=1.5, label="forecast mean")
    p = c.planned
    if p is not None and p.months:
        px = [_day(min(max(today, c.start), c.end))] + [
            _day(min(_month_end(m), c.end)) for m in p.months
        ]
        py = [float(c.spent_to_date)] + [float(v) for v in p.position]
        ax.plot(px, py, "-.", color="#0072B2", lw=1.2, label=f"as planned ({p.plan})")
    if c.start <= today <= c.end:
        ax.axvline(_day(today), color="#1d2330", lw=0.6, alpha=0.5)
    ax.set_xlim(start, end)
    ax.set_ylim(bottom=0)
    years = range(c.start.year + (c.start > date(c.start.year, 1, 1)), c.end.year + 1)
    step = max(1, len(years) // 8)
    ticks = [date(y, 1, 1) for y in years][::step]
    ax.set_xticks([_day(d) for d in ticks], [str(d.year) for d in ticks])
    _style(ax)
    _money_axis(ax)
    ax.set_title(f"{c.name} ({c.provider}): cumulative {c.currency}", fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _svg(fig, f"commitment {c.name}")


def _commitments_section(report: Report, plots: Plots) -> str:
    if not report.commitments:
        return ""
    planned = any(c.planned is not None for c in report.commitments)
    rows = []
    for c in report.commitments:
        f = c.forecast
        at_end = (
            "-"
            if f is None
            else f"{money(f.at_end[0])} [{money(f.at_end[1])}, {money(f.at_end[2])}]"
        )
        row = [
            _e(c.name),
            _e(c.provider),
            f"{c.start} to {c.end}",
            money(c.amount, c.currency),
            money(c.spent_to_date),
            percent(c.burned),
            money(c.expected),
            at_end,
        ]
        if planned:
            row.append("-" if c.planned is None else money(c.planned.at_end))
        rows.append(tuple(row))
    headers = [
        "commitment",
        "provider",
        "term",
        "amount",
        "spent",
        "burned",
        "burn line today",
        "forecast at end [low, high]",
    ]
    if planned:
        headers.append("as planned at end")
    table = _table(headers, rows, numeric=tuple(range(3, len(headers))))
    return (
        "<section><h2>Commitments: burn against the straight line</h2>"
        f'<div class="grid">{"".join(plots.commitments)}</div>{table}</section>'
    )


def concentration_plot(report: Report) -> str:
    """Each provider's share of spend and of GPU-hours, with its cap when the spec sets one:
    a ``<figure>`` with its SVG. The report must have providers."""
    providers = list(report.providers)
    fig = _figure(5.6, 0.45 * len(providers) + 0.9, left=_label_width(providers), top=0.1)
    ax = fig.add_subplot()
    names = [s.name for s in providers][::-1]
    y = list(range(len(names)))
    spend = [float(s.spend_share) for s in providers][::-1]
    gpu = [float(s.gpu_share) for s in providers][::-1]
    _rects(
        ax,
        [(0, v + 0.01, w, v + 0.39) for v, w in zip(y, spend, strict=True)]
        + [(0, v - 0.39, w, v - 0.01) for v, w in zip(y, gpu, strict=True)],
        ["#0072B2"] * len(y) + ["#56B4E9"] * len(y),
    )
    caps = [(v, float(s.cap)) for v, s in zip(y, providers[::-1], strict=True) if s.cap is not None]
    if caps:
        ax.vlines(
            [c for _, c in caps],
            [v - 0.45 for v, _ in caps],
            [v + 0.45 for v, _ in caps],
            color="#c0392b",
            lw=1.5,
        )
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(y) - 0.4)
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    _style(ax)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
    _legend(
        ax,
        [("spend", "#0072B2"), ("GPU-hours", "#56B4E9")] + ([("cap", "#c0392b")] if caps else []),
        loc="lower right",
    )
    return _svg(fig, "concentration per provider")


def cap_sentence(report: Report) -> str:
    """The concentration cap the spec sets, in words."""
    c = report.concentration
    if c is None:
        return "The spec sets no concentration cap."
    what = "spend" if c.measure == "spend" else "GPU-hours"
    own = " (own caps for some)" if c.providers else ""
    return f"Cap: {c.max_share:.0%} of {what} per provider{own}."


def _concentration_section(report: Report, plots: Plots) -> str:
    providers = list(report.providers)
    if not providers or plots.concentration is None:
        return ""
    c = report.concentration
    rows = [
        (
            _e(s.name),
            percent(s.spend_share),
            percent(s.gpu_share),
            "-" if s.cap is None else percent(s.cap),
            '<span class="over">over</span>' if c and s.over_cap(c.measure) else "",
        )
        for s in providers
    ]
    table = _table(["provider", "spend", "GPU-hours", "cap", ""], rows, numeric=(1, 2, 3))
    return (
        "<section><h2>Concentration per provider</h2>"
        f'<p class="sub">{_e(cap_sentence(report))}</p><div class="grid">'
        f"{plots.concentration}<div>{table}</div></div></section>"
    )


def _stacked(
    ax: Any, rows: Sequence[tuple[str, Sequence[Share], bool]], colours: dict[str, str]
) -> None:
    """100% bars, one per row (label, shares, GPU-hours rather than spend)."""
    from matplotlib.ticker import PercentFormatter

    rects: list[tuple[float, float, float, float]] = []
    fills: list[str] = []
    for y, (_label, shares, gpu) in enumerate(rows):
        left = 0.0
        for s in shares:
            width = float(s.gpu_share if gpu else s.spend_share)
            if width <= 0:
                continue
            rects.append((left, y - 0.3, left + width, y + 0.3))
            fills.append(colours[s.name])
            if width >= 0.06:
                ax.text(
                    left + width / 2,
                    y,
                    f"{width:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#ffffff" if s.name not in ("unclear", "unknown") else "#1d2330",
                )
            left += width
    _rects(ax, rects, fills)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def jurisdiction_plot(report: Report) -> str:
    """Shares of spend and GPU-hours by jurisdiction and by CLOUD Act exposure, as 100% bars:
    a ``<figure>`` with its SVG. The report must have entries."""
    fig = _figure(11, 2.4, left=0.8, bottom=0.9)
    fig.subplots_adjust(wspace=0.25)
    left, right = fig.subplots(1, 2)
    for ax, shares, colours, title in (
        (
            left,
            report.jurisdictions,
            JURISDICTION_COLOURS,
            "where: jurisdiction of the site's country",
        ),
        (right, report.cloud_act, EXPOSURE_COLOURS, "who: the provider's US CLOUD Act exposure"),
    ):
        _stacked(ax, [("spend", shares, False), ("GPU-hours", shares, True)], colours)
        ax.set_title(title, fontsize=9, loc="left")
        present = [(s.name, colours[s.name]) for s in shares if s.spend or s.gpu_hours]
        _legend(ax, present, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    return _svg(fig, "jurisdiction and CLOUD Act exposure")


def exposure_sentence(report: Report) -> str:
    """How much is with CLOUD Act-exposed providers, and what "adequacy" means, in words."""
    exposed = report.exposed
    return (
        f"{percent(exposed.spend_share)} of spend and {percent(exposed.gpu_share)} of "
        f"GPU-hours are with providers exposed to the US CLOUD Act ({' or '.join(EXPOSED)}). "
        "Adequacy: a country with an EU adequacy decision (full or for commercial "
        "organisations); the US, under the partial Data Privacy Framework decision, is apart."
    )


def _jurisdiction_section(report: Report, plots: Plots) -> str:
    if not report.totals.entries or plots.jurisdiction is None:
        return ""
    rows = [
        (
            what,
            _e(s.name),
            money(s.spend),
            percent(s.spend_share),
            quantity(s.gpu_hours),
            percent(s.gpu_share),
        )
        for what, group in (("jurisdiction", report.jurisdictions), ("CLOUD Act", report.cloud_act))
        for s in group
        if s.spend or s.gpu_hours
    ]
    header = ["by", "group", f"spend ({report.currency})", "share", "GPU-hours", "share"]
    return (
        "<section><h2>Jurisdiction and CLOUD Act exposure</h2>"
        f'<p class="sub">{_e(exposure_sentence(report))}</p>{plots.jurisdiction}'
        f"{_table(header, rows, numeric=(2, 3, 4, 5))}</section>"
    )


def _ranked_plot(rows: Sequence[Ranked], title: str, currency: str) -> str:
    fig = _figure(5.6, 0.28 * len(rows) + 0.8, left=_label_width(rows))
    ax = fig.add_subplot()
    names = [r.name or "(none)" for r in rows][::-1]
    spend = [float(r.spend) for r in rows][::-1]
    _rects(ax, [(0, y - 0.35, v, y + 0.35) for y, v in enumerate(spend)], ["#0072B2"] * len(rows))
    ax.set_xlim(0, max(spend, default=0) * 1.05 or 1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), names)
    _style(ax)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
    _money_axis(ax, "x")
    ax.set_title(f"{title} by spend ({currency})", fontsize=9, loc="left")
    return _svg(fig, title)


def _ranked_table(rows: Sequence[Ranked], what: str, currency: str) -> str:
    return _table(
        [what, f"spend ({currency})", "GPU-hours", "tokens in", "tokens out", "entries"],
        [
            (
                _e(r.name or "(none)"),
                money(r.spend),
                quantity(r.gpu_hours),
                quantity(r.input_tokens),
                quantity(r.output_tokens),
                quantity(r.entries),
            )
            for r in rows
        ],
        numeric=(1, 2, 3, 4, 5),
    )


def _top_section(report: Report) -> str:
    if not report.workloads and not report.tenants:
        return ""
    cur = report.currency
    return (
        '<section><h2>Top workloads and tenants</h2><div class="grid">'
        f"<div>{_ranked_plot(report.workloads, 'top workloads', cur)}"
        f"{_ranked_table(report.workloads, 'workload', cur)}</div>"
        f"<div>{_ranked_plot(report.tenants, 'top tenants', cur)}"
        f"{_ranked_table(report.tenants, 'tenant', cur)}</div>"
        "</div></section>"
    )


def _bar(used: Decimal) -> str:
    width = min(Decimal(100), max(Decimal(0), used * 100)).quantize(Decimal("0.1"))
    over = ' class="over"' if used >= 1 else ""
    return f'<div class="bar"><i{over} style="width:{width}%"></i></div>'


def _budgets_section(report: Report) -> str:
    if not report.budgets:
        return ""
    rows = [
        (
            _e(b.name),
            _e(f"{b.scope} {b.subject}"),
            _e(f"{b.period} from {b.start}"),
            money(b.amount, b.currency),
            money(b.spent),
            percent(b.used),
            _bar(b.used),
            money(b.projected),
        )
        for b in report.budgets
    ]
    table = _table(
        ["budget", "for", "period", "amount", "spent", "used", "", "at this pace"],
        rows,
        numeric=(3, 4, 5, 7),
    )
    return f"<section><h2>Budgets</h2>{table}</section>"


# the pieces another page draws with (the simulator's report): one look, one way to draw
new_figure = _figure
inline_svg = _svg
svg_document = _svg_document
axis_style = _style
