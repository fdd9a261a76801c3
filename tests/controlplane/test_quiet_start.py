"""A server start says what an operator needs, not what the schema migrator did."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from archipel.controlplane import Store


def test_migrating_logs_nothing_below_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the alembic logger lives as long as the test process: an earlier migration (the
    # ledger's, another store's) may have quieted it already; start from its default
    monkeypatch.setattr(logging.getLogger("alembic"), "level", logging.NOTSET)
    caplog.set_level(logging.INFO)  # as `archipel server` configures logging
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        store.migrate()
    finally:
        store.close()
    chatter = [r for r in caplog.records if r.name.startswith("alembic")]
    assert [(r.name, r.getMessage()) for r in chatter if r.levelno < logging.WARNING] == []
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.WARNING
