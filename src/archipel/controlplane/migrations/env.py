"""Alembic environment: the URL comes from the caller's Config, never from a file."""

from __future__ import annotations

import logging

from alembic import context

from archipel.controlplane._models import Base

# `upgrade head` runs on every server start: its INFO lines ("Context impl ...",
# "Will assume transactional DDL") say nothing to an operator. Warnings and errors stay.
logging.getLogger("alembic").setLevel(logging.WARNING)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through archipel.controlplane.Store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
