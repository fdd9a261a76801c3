"""Spreading the replicas of a service over providers and countries (I/O-free).

A workload submitted with ``replicas: N`` becomes a group of N runs (see
:meth:`Store.submit_group`). When one of them is placed, its ``spread`` rule
restricts the sites it may go to, given the *holders*: the siblings that hold
a site now (launching or running). Finished siblings count for nothing, and
the other unfinished ones (pending, placing, recovering) are *unplaced*, like
the run being placed.

- ``max_share_per_provider``: at most ``max(1, floor(share * N))`` replicas per
  provider, so a provider that holds that many is excluded;
- ``min_providers``: while the holders use fewer providers than asked, and the
  unplaced replicas (this one included) are no more than the providers still
  missing, this replica must go to a provider the group does not use yet
  (earlier replicas may share a provider while enough are left to make up the
  difference);
- ``min_countries``: the same with countries (a site without a country never
  adds one).

:func:`spread_exclusions` says which sites a rule excludes and why, so the
reconciler can show it in the run's waiting message. :func:`spread_problems`
checks at submission that the sites a workload may use could satisfy the rule
at all.

The rule is applied per placement from the store's current state: two control
planes placing two replicas of one group in the same instant may both see the
same holders (each run is still launched exactly once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from archipel.core import Spread


@dataclass(frozen=True, slots=True)
class Where:
    """What the spread rule knows of a site."""

    provider: str
    country: str | None


def spread_exclusions(
    spread: Spread,
    replicas: int,
    sites: Mapping[str, Where],
    holders: Sequence[str],
    unplaced: int,
) -> dict[str, str]:
    """Site name -> why the spread rule keeps the next replica off it (allowed sites absent).

    ``holders`` are the sites the siblings hold now (one entry per sibling);
    ``unplaced`` counts the unfinished replicas without a site, this one included.
    """
    held = [sites[h] for h in holders if h in sites]
    per_provider = Counter(w.provider for w in held)
    providers = set(per_provider)
    countries = {w.country for w in held if w.country is not None}
    cap = spread.provider_cap(replicas)
    need_provider = 0 < spread.min_providers - len(providers) >= unplaced
    need_country = 0 < spread.min_countries - len(countries) >= unplaced
    used = ", ".join(sorted(providers))
    out: dict[str, str] = {}
    for name, where in sites.items():
        if per_provider[where.provider] >= cap:
            out[name] = (
                f"spread.max_share_per_provider: {where.provider} already holds "
                f"{per_provider[where.provider]} of {replicas} replicas (at most {cap})"
            )
        elif need_provider and where.provider in providers:
            out[name] = (
                f"spread.min_providers ({spread.min_providers}): the group uses only {used}; "
                "this replica must go to another provider"
            )
        elif need_country and (where.country is None or where.country in countries):
            out[name] = (
                f"spread.min_countries ({spread.min_countries}): the group is only in "
                f"{', '.join(sorted(countries)) or 'no country'}; this replica must go to "
                "another country"
            )
    return out


def spread_problems(spread: Spread, replicas: int, fitting: Collection[Where]) -> list[str]:
    """Why replicas limited to ``fitting`` sites could never satisfy the rule (empty: they can)."""
    providers = {w.provider for w in fitting}
    countries = {w.country for w in fitting if w.country is not None}
    problems = []
    if len(providers) < spread.min_providers:
        problems.append(
            f"spread.min_providers: {spread.min_providers} providers asked, but the sites "
            f"this workload may use are of {len(providers)} ({', '.join(sorted(providers))})"
        )
    if len(countries) < spread.min_countries:
        problems.append(
            f"spread.min_countries: {spread.min_countries} countries asked, but the sites "
            f"this workload may use are in {len(countries)} "
            f"({', '.join(sorted(countries)) or 'none known'})"
        )
    cap = spread.provider_cap(replicas)
    if len(providers) * cap < replicas:
        problems.append(
            f"spread.max_share_per_provider: at most {cap} of {replicas} replicas per provider, "
            f"and the sites this workload may use are of {len(providers)} providers"
        )
    return problems


def group_state(
    run_id: str, siblings: Sequence[tuple[str, bool, bool, str | None]]
) -> tuple[list[str], int]:
    """(holders, unplaced) for ``run_id`` from its group's runs.

    Each sibling is (run id, active, terminal, site); ``run_id`` itself counts
    as unplaced whatever it says.
    """
    holders: list[str] = []
    unplaced = 1
    for sid, active, terminal, site in siblings:
        if sid == run_id or terminal:
            continue
        if active and site is not None:
            holders.append(site)
        else:
            unplaced += 1
    return holders, unplaced
