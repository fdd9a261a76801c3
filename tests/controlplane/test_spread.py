"""The spread rule on its own: which sites it keeps the next replica of a group off."""

from __future__ import annotations

from typing import Any

import pytest

from archipel.controlplane._spread import Where, group_state, spread_exclusions, spread_problems
from archipel.core import Spread

SITES = {
    "paris": Where("scaleway", "FR"),
    "lyon": Where("ovh", "FR"),
    "frankfurt": Where("ionos", "DE"),
    "lab": Where("self", None),
}


@pytest.mark.parametrize(
    ("rule", "replicas", "holders", "unplaced", "excluded"),
    [
        pytest.param({}, 3, ["paris", "paris"], 1, set(), id="no rule: nothing excluded"),
        pytest.param(
            {"max_share_per_provider": 0.5}, 4, ["paris", "paris"], 2, {"paris"}, id="share cap"
        ),
        pytest.param(
            {"min_providers": 3}, 4, ["paris"], 3, set(), id="enough replicas left: any provider"
        ),
        pytest.param(
            {"min_providers": 3}, 4, ["paris", "paris"], 2, {"paris"}, id="needed: new provider"
        ),
        pytest.param({"min_providers": 2}, 2, ["paris", "frankfurt"], 1, set(), id="already met"),
        pytest.param(
            {"min_countries": 2},
            2,
            ["paris"],
            1,
            {"paris", "lyon", "lab"},
            id="new country: not France, not unknown",
        ),
    ],
)
def test_the_rule_excludes_the_sites_that_would_break_it(
    rule: dict[str, Any], replicas: int, holders: list[str], unplaced: int, excluded: set[str]
) -> None:
    out = spread_exclusions(Spread(**rule), replicas, SITES, holders, unplaced)
    assert set(out) == excluded
    assert all(why.startswith("spread.") for why in out.values())


def test_the_run_itself_and_finished_siblings_are_not_holders() -> None:
    siblings = [
        ("r1", False, False, None),  # this one, pending
        ("r2", True, False, "paris"),  # running
        ("r3", False, True, "lyon"),  # cancelled
        ("r4", False, False, "frankfurt"),  # recovering: its old site is not held
    ]
    assert group_state("r1", siblings) == (["paris"], 2)


def test_sites_of_one_provider_can_never_satisfy_min_providers_two() -> None:
    problems = spread_problems(Spread(min_providers=2), 2, [SITES["paris"], SITES["paris"]])
    assert [p.split(":")[0] for p in problems] == ["spread.min_providers"]
    assert spread_problems(Spread(min_providers=2), 2, [SITES["paris"], SITES["lyon"]]) == []
