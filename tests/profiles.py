"""Hypothesis profiles and the example budget of each property test.

- ``dev`` (default on a workstation): each test's own number of examples, the
  example database on, so a failure found once is replayed first next time.
- ``ci`` (default when ``CI`` is true): random, with the seed printed in the
  report header (replay with ``HYPOTHESIS_SEED=<seed>``), twice the examples,
  no database, and the failing example printed in full.
- ``thorough`` (``HYPOTHESIS_PROFILE=thorough``, nightly or before a release):
  ten times the examples.
- ``mutants`` (``make mutants``): derandomized, so every mutant meets the same
  examples.

A test asks for ``examples(n)``: ``n`` times the profile's factor.
"""

from __future__ import annotations

import os

from hypothesis import settings

FACTORS = {"dev": 1, "ci": 2, "thorough": 10, "mutants": 1}

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=False, database=None, print_blob=True)
settings.register_profile("thorough", deadline=None, print_blob=True)
# `make mutants`: the same examples for every mutant, so a kill is never luck
settings.register_profile("mutants", deadline=None, derandomize=True, database=None)


def in_ci() -> bool:
    """``CI`` is set to a true value (``1``, ``true``, ``yes``); ``CI=false`` is not CI."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def profile_name() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev")
    if name not in FACTORS:
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r}: choose one of {', '.join(FACTORS)}")
    return name


def examples(n: int) -> int:
    """The number of examples a test that asks for ``n`` runs under the loaded profile."""
    return n * FACTORS.get(settings.get_current_profile_name(), 1)
