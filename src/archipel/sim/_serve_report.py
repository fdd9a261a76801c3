"""Study 2's results as one self-contained HTML page (no script, no CDN): the policies'
figures, where each stands between cost and availability, its replicas ready over time
with the preemptions, and its cumulative cost.

It reads the document ``archipel simulate serve --json`` prints and each policy's
timeline (:attr:`ServeOutcome.timeline`), and draws with the ledger report's own look.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from archipel.ledger._report_html import CSS, PALETTE, axis_style, inline_svg, new_figure
from archipel.sim._serve import ServeOutcome

HOUR = 3600.0


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _frontier(doc: Mapping[str, Any]) -> str:
    """Cost against the share of the time with every replica wanted ready, per policy."""
    fig = new_figure(5.6, 3.2, left=0.8, bottom=0.5)
    ax = fig.add_subplot()
    for i, p in enumerate(doc["policies"]):
        ax.plot([p["available"] * 100], [float(p["cost"])], "o",
                color=PALETTE[i % len(PALETTE)], label=p["policy"])  # fmt: skip
    ax.set_xlabel("time with every replica wanted ready (%)", fontsize=8)
    ax.set_ylabel(f"cost ({doc.get('currency', 'USD')})", fontsize=8)
    axis_style(ax)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Cost against availability: lower and further right is better",
                 fontsize=9, loc="left")  # fmt: skip
    return inline_svg(fig, "cost against availability, per policy")


def _timelines(outcomes: Sequence[ServeOutcome], wanted: int) -> str:
    """Replicas ready over time, one line per policy, and a mark at each preemption."""
    fig = new_figure(11.6, 3.0, left=0.6, bottom=0.5)
    ax = fig.add_subplot()
    for i, o in enumerate(outcomes):
        colour = PALETTE[i % len(PALETTE)]
        hours = [t / HOUR for t, *_ in o.timeline]
        ready = [r for _, r, *_ in o.timeline]
        ax.step(hours, ready, where="post", color=colour, linewidth=1.1, label=o.policy)
        if o.preempted_at:
            ax.plot([t / HOUR for t in o.preempted_at], [-0.35 - 0.25 * i] * len(o.preempted_at),
                    "|", color=colour, markersize=5)  # fmt: skip
    ax.axhline(wanted, color="#888888", linewidth=0.8, linestyle=":")
    ax.set_xlabel("hours (marks below zero: preemptions)", fontsize=8)
    ax.set_ylabel("replicas ready", fontsize=8)
    axis_style(ax)
    ax.legend(fontsize=7, frameon=False, ncols=len(outcomes))
    ax.set_title(f"Replicas ready over time (dotted: the {wanted} wanted)", fontsize=9,
                 loc="left")  # fmt: skip
    return inline_svg(fig, "replicas ready over time, per policy, with preemptions")


def _cumulative(outcomes: Sequence[ServeOutcome], currency: str) -> str:
    """Cost so far over time, one line per policy."""
    fig = new_figure(5.6, 3.2, left=0.8, bottom=0.5)
    ax = fig.add_subplot()
    for i, o in enumerate(outcomes):
        ax.plot([t / HOUR for t, *_ in o.timeline], [c for *_, c in o.timeline],
                color=PALETTE[i % len(PALETTE)], linewidth=1.2, label=o.policy)  # fmt: skip
    ax.set_xlabel("hours", fontsize=8)
    ax.set_ylabel(f"cost so far ({currency})", fontsize=8)
    axis_style(ax)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Cumulative cost", fontsize=9, loc="left")
    return inline_svg(fig, "cumulative cost over time, per policy")


def render_serve_html(doc: Mapping[str, Any], outcomes: Sequence[ServeOutcome]) -> str:
    """The page for one ``archipel simulate serve`` document and its policies' outcomes."""
    currency = str(doc.get("currency", "USD"))
    header = ["policy", "cost", "vs on-demand", "spot h", "on-demand h", "available",
              "p50 (s)", "p99 (s)", "waited > 10 s", "preemptions"]  # fmt: skip

    def seconds(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    def against(saving: str | None) -> str:
        return "-" if saving is None else f"{-Decimal(saving):+.1%}"

    rows = "".join(
        "<tr>"
        f"<td>{_e(p['policy'])}</td>"
        f'<td class="n">{Decimal(p["cost"]):,.2f} {_e(currency)}</td>'
        f'<td class="n">{against(p["saving"])}</td>'
        f'<td class="n">{_e(p["spot_hours"])}</td>'
        f'<td class="n">{_e(p["on_demand_hours"])}</td>'
        f'<td class="n">{p["available"]:.2%}</td>'
        f'<td class="n">{seconds(p["latency_s"]["p50"])}</td>'
        f'<td class="n">{seconds(p["latency_s"]["p99"])}</td>'
        f'<td class="n">{p["slo_missed"] / max(p["requests"], 1):.1%}</td>'
        f'<td class="n">{p["preemptions"]}</td>'
        "</tr>"
        for p in doc["policies"]
    )
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if i else f"<th>{_e(h)}</th>" for i, h in enumerate(header)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    title = f"Serving on spot: {doc['replicas']} replicas of {doc['slots']} slots"
    plots = _frontier(doc) + _cumulative(outcomes, currency)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="sub">requests of {_e(doc["requests"])} · spot in '
        f"{_e(', '.join(doc['zones']))} · data class {_e(doc['data_class'])}</p></header>"
        f"<section><h2>The policies</h2>{table}</section>"
        f'<section><h2>Cost and availability</h2><div class="grid">{plots}</div></section>'
        f"<section><h2>Replicas and preemptions</h2>"
        f"{_timelines(outcomes, int(doc['replicas']))}</section>"
        '<p class="note">Each replica is placed by the control plane\'s placement engine; '
        "spot comes and goes as in the zones' availability traces; requests arrive as in "
        "the LLM trace. The model is in docs/simulate-serve.md.</p>"
        "</main></body></html>\n"
    )
