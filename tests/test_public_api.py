"""Each package's ``__init__`` is its public API: a sorted, complete ``__all__``."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "archipel",
    "archipel.core",
    "archipel.catalog",
    "archipel.policy",
    "archipel.placement",
    "archipel.cli",
    "archipel.console",
    "archipel.backends",
    "archipel.controlplane",
    "archipel.gateway",
    "archipel.ledger",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted(name: str) -> None:
    module = importlib.import_module(name)
    assert list(module.__all__) == sorted(module.__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_every_public_member(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, v in vars(module).items()
        if (not n.startswith("_") or n == "__version__")
        and not inspect.ismodule(v)
        and n != "annotations"
    }
    assert public == set(module.__all__)
