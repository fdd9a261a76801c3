"""The dependency lock: every declared dependency is pinned, and this environment is the locked one."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins(lock: str = "requirements.lock") -> dict[str, str]:
    """Name -> version of every lock entry that applies to this interpreter and platform."""
    pins = {}
    for line in (ROOT / lock).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+))?", line)
        if m and (m.group(3) is None or Marker(m.group(3).strip()).evaluate()):
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["dev"] + extras["gateway"]]


@pytest.mark.parametrize("requirement", _declared(), ids=str)
def test_every_declared_dependency_is_pinned_within_its_declared_range(
    requirement: Requirement,
) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate():
        pytest.skip(f"{requirement} does not apply here")
    pinned = _pins().get(canonicalize_name(requirement.name))
    assert pinned is not None, f"{requirement.name} is not in requirements.lock: run `make lock`"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"requirements.lock pins {requirement.name}=={pinned}, outside {requirement}: "
        "run `make lock`"
    )


def test_this_environment_runs_the_locked_versions() -> None:
    drift = {}
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"locked vs installed (reinstall with `make clean test`): {drift}"


def test_the_mutation_lock_pins_its_extra_on_top_of_the_same_versions() -> None:
    """`make mutants` installs requirements-mutation.lock: the mutation extra, and every
    package the main lock has at the very version the main lock pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    mutation = _pins("requirements-mutation.lock")
    for requirement in map(Requirement, project["optional-dependencies"]["mutation"]):
        pinned = mutation.get(canonicalize_name(requirement.name))
        assert pinned is not None and requirement.specifier.contains(pinned), (
            f"{requirement} is not pinned within its range in requirements-mutation.lock: "
            "run `make lock`"
        )
    main = _pins()
    apart = {n: (v, mutation.get(n)) for n, v in main.items() if mutation.get(n) != v}
    assert not apart, f"the two locks disagree (run `make lock`): {apart}"
