"""Simulation of Archipel's decisions on real traces.

Study 3, the portfolio under outages, is ``archipel simulate SCENARIO.yaml``
(:mod:`archipel.sim._portfolio`); :func:`scenario_plots` draws its results, for the
page ``--report`` writes and for the console.

Study 1, deadline jobs on spot (the *Can't Be Late* setup, NSDI'24): :func:`simulate` runs
the on-demand, greedy, Uniform Progress, optimal and multi-zone ``archipel`` policies of
one job over spot availability traces read by :func:`load_trace`.
"""

from __future__ import annotations

from archipel.sim._report import duration, render_scenario_html, scenario_plots
from archipel.sim._spot import (
    POLICIES,
    Model,
    Outcome,
    SpotJob,
    SpotPrices,
    money,
    optimal_table,
    simulate,
)
from archipel.sim._trace import SpotTrace, load_trace, parse_trace

__all__ = [
    "Model",
    "Outcome",
    "POLICIES",
    "SpotJob",
    "SpotPrices",
    "SpotTrace",
    "duration",
    "load_trace",
    "money",
    "optimal_table",
    "parse_trace",
    "render_scenario_html",
    "scenario_plots",
    "simulate",
]
