"""Which event loop the gateway runs on: ``auto`` is uvloop exactly when it is installed.

uvloop is optional, so each case decides for itself whether it is "installed":
a stand-in module, or an import that fails.
"""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from archipel.gateway._server import new_event_loop


class StandInLoop(asyncio.SelectorEventLoop):
    """What the stand-in uvloop hands out, recognisable by its type."""


@pytest.fixture
def uvloop_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("uvloop")
    module.new_event_loop = StandInLoop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", module)


@pytest.fixture
def uvloop_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ImportError


def _runs(loop: asyncio.AbstractEventLoop) -> None:
    try:
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()


@pytest.mark.usefixtures("uvloop_installed")
@pytest.mark.parametrize("kind", ["auto", "uvloop"])
def test_uvloop_when_it_is_installed(kind: str) -> None:
    loop = new_event_loop(kind)
    assert type(loop) is StandInLoop
    _runs(loop)


@pytest.mark.usefixtures("uvloop_missing")
def test_auto_falls_back_to_asyncio_without_uvloop() -> None:
    loop = new_event_loop("auto")
    assert type(loop) is not StandInLoop
    assert type(loop).__module__.startswith("asyncio")
    _runs(loop)


@pytest.mark.usefixtures("uvloop_missing")
def test_asking_for_uvloop_without_it_is_an_error() -> None:
    with pytest.raises(ImportError):
        new_event_loop("uvloop")


@pytest.mark.usefixtures("uvloop_installed")
def test_asyncio_is_asyncio_even_with_uvloop_installed() -> None:
    loop = new_event_loop("asyncio")
    assert type(loop) is not StandInLoop
    assert type(loop).__module__.startswith("asyncio")
    _runs(loop)
