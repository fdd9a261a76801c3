"""A scenario's results as one self-contained HTML page: the strategies' figures, where
each stands between cost and work done, and what it lost (no script, no CDN).

It reads the document ``archipel simulate SCENARIO.yaml --json`` prints (one run, or a
sweep's summary over seeds) and draws with the ledger report's own look and plotting.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from archipel.ledger._report_html import (
    CSS,
    PALETTE,
    axis_style,
    inline_svg,
    new_figure,
    svg_document,
)

if TYPE_CHECKING:
    from archipel.sim._replay import Study


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy: (mean, low, high) of each figure, whatever the document."""
    if "summary" in doc:
        return [
            {
                "strategy": s["strategy"],
                "currency": s["currency"],
                "seeds": s["seeds"],
                "violations": s["violations"],
                **{
                    k: (s[k]["mean"], s[k]["low"], s[k]["high"])
                    for k in (
                        "cost",
                        "per_done_gpu_hour",
                        "done",
                        "refused",
                        "failed",
                        "lost_gpu_hours",
                        "wait_p95_s",
                        "dark_hours",
                    )
                },
                "jobs": None,
            }
            for s in doc["summary"]
        ]
    rows = []
    for s in doc["strategies"]:
        done_hours = float(s["done_gpu_hours"])
        paid = float(s.get("total_cost", s["cost"]))  # net of discounts, plus shortfalls
        per = paid / done_hours if done_hours else 0.0

        def one(v: float) -> tuple[float, float, float]:
            return (v, v, v)

        rows.append(
            {
                "strategy": s["strategy"],
                "currency": s["currency"],
                "seeds": 1,
                "violations": len(s["violations"]),
                "cost": one(paid),
                "per_done_gpu_hour": one(per),
                "done": one(float(s["done"])),
                "refused": one(float(s["refused"])),
                "failed": one(float(s["failed"])),
                "lost_gpu_hours": one(float(s["lost_gpu_hours"])),
                "wait_p95_s": one(float(s["wait_p95_s"])),
                "dark_hours": one(float(s["dark_hours"])),
                "jobs": s["jobs"],
            }
        )
    return rows


def _cell(figure: tuple[float, float, float], fmt: str) -> str:
    mean, low, high = figure
    text = format(mean, fmt)
    if low != high:
        text += f' <span class="sub">({format(low, fmt)} to {format(high, fmt)})</span>'
    return text


def _frontier(rows: Sequence[dict[str, Any]], jobs: int) -> str:
    """Cost per useful GPU-hour against the share of jobs done, one point per strategy."""
    fig = new_figure(5.6, 3.2, left=0.7, bottom=0.5)
    ax = fig.add_subplot()
    for i, r in enumerate(rows):
        colour = PALETTE[i % len(PALETTE)]
        x = [v / jobs * 100 for v in r["done"]]
        y = r["per_done_gpu_hour"]
        ax.errorbar([x[0]], [y[0]], xerr=[[x[0] - x[1]], [x[2] - x[0]]],
                    yerr=[[y[0] - y[1]], [y[2] - y[0]]], fmt="o", color=colour,
                    capsize=3, label=r["strategy"])  # fmt: skip
    ax.set_xlabel("jobs done (%)", fontsize=8)
    ax.set_ylabel(f"cost per done GPU-hour ({rows[0]['currency']})", fontsize=8)
    axis_style(ax)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Where each strategy stands: lower and further right is better",
                 fontsize=9, loc="left")  # fmt: skip
    return inline_svg(fig, "cost per done GPU-hour against jobs done")


def _losses(rows: Sequence[dict[str, Any]]) -> str:
    """GPU-hours lost and hours with every provider down, per strategy."""
    fig = new_figure(5.6, 3.2, left=0.7, bottom=0.5)
    ax = fig.add_subplot()
    names = [r["strategy"] for r in rows]
    xs = range(len(rows))
    width = 0.38
    lost = [r["lost_gpu_hours"][0] for r in rows]
    dark = [r["dark_hours"][0] for r in rows]
    ax.bar([x - width / 2 for x in xs], lost, width, color=PALETTE[0], label="GPU-hours lost")
    ax.bar([x + width / 2 for x in xs], dark, width, color=PALETTE[1],
           label="hours with every provider down")  # fmt: skip
    ax.set_xticks(list(xs), names, fontsize=8)
    axis_style(ax)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("What the outages took", fontsize=9, loc="left")
    return inline_svg(fig, "GPU-hours lost and hours all down, per strategy")


def scenario_plots(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The two plots of a scenario document, each an inline ``<figure>`` of SVG: where each
    strategy stands between cost per useful GPU-hour and jobs done, and what the outages
    took. The page :func:`render_scenario_html` writes and the console draw the same."""
    rows = _rows(doc)
    return _frontier(rows, int(doc["trace"]["jobs"])), _losses(rows)


def duration(seconds: float) -> str:
    """A wait or a recovery as the command's table prints it: ``56 s``, ``91 min``, ``4.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_scenario_html(doc: Mapping[str, Any]) -> str:
    """The page for one scenario document (see the module's text)."""
    rows = _rows(doc)
    trace = doc["trace"]
    jobs = int(trace["jobs"])
    seeds = doc.get("seeds") or [doc.get("seed")]
    header = ["strategy", "cost", "per done GPU-h", "done", "refused", "failed",
              "lost GPU-h", "wait p95 (s)", "all down (h)", "violations"]  # fmt: skip
    body = "".join(
        "<tr>"
        f"<td>{_e(r['strategy'])}</td>"
        f'<td class="n">{_cell(r["cost"], ",.2f")} {_e(r["currency"])}</td>'
        f'<td class="n">{_cell(r["per_done_gpu_hour"], ",.2f")}</td>'
        f'<td class="n">{_cell(r["done"], ".0f")} / {jobs}</td>'
        f'<td class="n">{_cell(r["refused"], ".0f")}</td>'
        f'<td class="n">{_cell(r["failed"], ".0f")}</td>'
        f'<td class="n">{_cell(r["lost_gpu_hours"], ",.2f")}</td>'
        f'<td class="n">{_cell(r["wait_p95_s"], ",.0f")}</td>'
        f'<td class="n">{_cell(r["dark_hours"], ",.2f")}</td>'
        f'<td class="n">{r["violations"]}</td>'
        "</tr>"
        for r in rows
    )
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if i else f"<th>{_e(h)}</th>" for i, h in enumerate(header)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    seed_text = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"seeds {seeds[0]} to {seeds[-1]} (means, and ranges)"
    )
    plots = "".join(scenario_plots(doc))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Simulation: {_e(doc['scenario'])}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f"<header><h1>Simulation: {_e(doc['scenario'])}</h1>"
        f'<p class="sub">{jobs} jobs of {_e(trace["source"])}, days {trace["first_day"]:g} to '
        f"{trace['first_day'] + trace['days']:g} · {_e(seed_text)}</p></header>"
        f"<section><h2>The strategies</h2>{table}</section>"
        f'<section><h2>Cost, work done and losses</h2><div class="grid">{plots}</div></section>'
        '<p class="note">Every decision is the control plane\'s own (its store, reconciler '
        "and placement engine) on simulated sites; violations are judged by a check written "
        "apart from the policy engine. The model is in docs/simulate-portfolio.md.</p>"
        "</main></body></html>\n"
    )


# -- the fidelity replay's quantile-quantile plot (docs/simulate-replay.md) ---------------------

#: points of a quantile-quantile plot: the quantiles at (i + 0.5) / QQ_POINTS
QQ_POINTS = 200


def render_replay_qq(study: Study) -> str:
    """The quantile-quantile plot of a fidelity study as one standalone SVG file.

    Simulated against observed queueing delay, quantile by quantile, on a scale linear
    below one second and logarithmic above: the half judged (out of sample), the half
    calibrated on (in sample), and the baseline scheduler of capacity alone. Points on the
    diagonal are quantiles the replay got right; below it, the replay binds sooner.
    """
    from archipel.sim._distance import quantiles

    probabilities = [(i + 0.5) / QQ_POINTS for i in range(QQ_POINTS)]
    fig = new_figure(5.6, 4.4, left=0.75, bottom=0.55, top=0.45)
    ax = fig.add_subplot()
    top = 1.0
    series = (("judged half (out of sample)", study.judged, PALETTE[0], 14),
              ("calibration half (in sample)", study.calibration, PALETTE[1], 8),
              ("capacity alone, judged half", study.baseline, PALETTE[5], 8))  # fmt: skip
    for label, fidelity, colour, size in series:
        if not fidelity.observed or not fidelity.simulated:
            continue
        x = quantiles(fidelity.observed, probabilities)
        y = quantiles(fidelity.simulated, probabilities)
        top = max(top, x[-1], y[-1])
        text = f"{label}: W1 {fidelity.w1:,.1f} s, KS {fidelity.ks:.3f}"
        ax.scatter(x, y, s=size, color=colour, label=text, linewidths=0, alpha=0.85)
    ax.plot([0, top], [0, top], color="#7F7F7F", linewidth=0.8, linestyle="--")
    for axis in (ax.set_xscale, ax.set_yscale):
        axis("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(-0.2, top * 1.3)
    ax.set_ylim(-0.2, top * 1.3)
    ax.set_xlabel("observed queueing delay (s), scheduled - created", fontsize=8)
    ax.set_ylabel("simulated queueing delay (s)", fontsize=8)
    axis_style(ax)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(
        f"openb replay on its {len(study.run.pods):,} pods, seed {study.seed}: "
        f"{QQ_POINTS} quantiles",
        fontsize=9,
        loc="left",
    )
    return svg_document(fig, "replay-qq")
