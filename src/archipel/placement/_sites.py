"""Filter plugins for the state of sites now: a site is an offer whose instance is its name.

The control plane turns its declared sites into a small offer table (see
``archipel.controlplane._placement``) and plans a run on it with the default
filters plus these, built per decision from what it knows this round: the
sites blocked for this run after failures, the sites down, the sites full,
the sites the run's spread rule keeps it off, and the sites that do not run
this kind of workload (a SageMaker training site, for an inference service).
Each rejects the offers of the sites it names, each with its own
:class:`Reason` and message, so a run waiting for a site is explained as
``archipel plan --explain`` explains an offer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archipel.core import Reason, Rejection
from archipel.core._offers import IntArray
from archipel.placement._phases import FilterContext, FilterResult


class SiteStateFilter:
    """Rejects the sites named in ``why`` (site name -> message) with one ``reason``.

    Row by row: meant for a table of sites (a handful of rows), not the catalog.
    """

    def __init__(self, name: str, reason: Reason, why: Mapping[str, str]) -> None:
        self.name = name
        self.reason = reason
        self.why = dict(why)

    def filter(self, ctx: FilterContext, rows: IntArray) -> FilterResult:
        offers = ctx.snapshot.offers
        names = offers.strings
        instance = offers.col("instance_idx")[rows]
        keep = np.fromiter(
            (names[i] not in self.why for i in instance.tolist()), np.bool_, len(rows)
        )

        def why(row: int) -> Rejection:
            site = names[int(offers.col("instance_idx")[row])]
            return Rejection(self.reason, self.name, self.why[site])

        return FilterResult(keep=keep, rejection=why)


def site_filters(
    blocked: Mapping[str, str],
    down: Mapping[str, str],
    full: Mapping[str, str],
    spread: Mapping[str, str],
    kind: Mapping[str, str] | None = None,
) -> tuple[SiteStateFilter, ...]:
    """The site-state filters of one decision, in the order they are counted (none empty)."""
    named = (
        ("site-kind", Reason.SITE_KIND, kind or {}),
        ("site-blocked", Reason.SITE_BLOCKED, blocked),
        ("site-down", Reason.SITE_DOWN, down),
        ("site-full", Reason.SITE_FULL, full),
        ("spread", Reason.SPREAD, spread),
    )
    return tuple(SiteStateFilter(name, reason, why) for name, reason, why in named if why)
