"""Alembic environment: the URL comes from the caller's Config, never from a file.

On PostgreSQL the migrations run under a transaction-level advisory lock, so
that control-plane replicas started together on one database migrate it one
after the other: the first brings the schema up to date, the others wait for
its commit, then find nothing left to do. Without it they race on the same
``CREATE TABLE`` and all but one fail at start-up.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import text

from archipel.controlplane._models import Base

#: the advisory lock key of the schema migrations (any constant no other lock uses)
MIGRATION_LOCK = 0x61726368_6D696772  # "archmigr"

# `upgrade head` runs on every server start: its INFO lines ("Context impl ...",
# "Will assume transactional DDL") say nothing to an operator. Warnings and errors stay.
logging.getLogger("alembic").setLevel(logging.WARNING)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through archipel.controlplane.Store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # held until the caller's transaction commits, with the migrations in it
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.run_migrations()
