"""What the console ships for the browser: the pinned htmx, fetched reproducibly."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files
from pathlib import Path

from archipel.console import HTMX_SHA256, HTMX_VERSION

ROOT = Path(__file__).resolve().parents[2]
STATIC = files("archipel.console") / "static"


def test_the_shipped_htmx_is_the_pinned_one() -> None:
    shipped = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == HTMX_SHA256


def test_the_vendoring_script_fetches_the_same_version_and_digest() -> None:
    script = (ROOT / "scripts/console/vendor.sh").read_text()
    assert re.search(r'^HTMX_VERSION="([^"]+)"$', script, re.M)[1] == HTMX_VERSION  # type: ignore[index]
    assert re.search(r'^HTMX_SHA256="([^"]+)"$', script, re.M)[1] == HTMX_SHA256  # type: ignore[index]


def test_nothing_shipped_loads_from_another_origin() -> None:
    """Offline and behind a proxy the console must work: no CDN, no remote font."""
    templates = files("archipel.console") / "templates"
    for folder in (templates, STATIC):
        for item in folder.iterdir():
            if item.name == "htmx.min.js":
                continue
            text = item.read_text()
            assert not re.search(r'(src|href)="(https?:)?//', text), item.name
            assert "@import" not in text and "url(http" not in text, item.name


def test_the_browser_tests_axe_is_the_pinned_one() -> None:
    script = (ROOT / "scripts/console/vendor.sh").read_text()
    digest = re.search(r'^AXE_SHA256="([^"]+)"$', script, re.M)[1]  # type: ignore[index]
    shipped = (ROOT / "tests/console/vendor/axe.min.js").read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == digest


def test_every_asset_is_in_the_packages_data() -> None:
    """A template or script the wheel would leave out works in a checkout and breaks
    installed: every file of templates/ and static/ matches a package-data pattern."""
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["archipel"]
    package = ROOT / "src" / "archipel"
    for folder in ("templates", "static"):
        for path in (package / "console" / folder).iterdir():
            name = str(path.relative_to(package))
            assert any(fnmatch.fnmatch(name, p) for p in patterns), name
