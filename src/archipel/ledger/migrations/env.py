"""Alembic environment of the ledger: its own chain and version table, on the caller's connection.

The ledger may share a database with the control plane (one deployment, one
ledger): its version table (``archipel_ledger_version``) keeps the two chains
apart, and neither touches the other's tables. On PostgreSQL the migrations
run under a transaction-level advisory lock of their own (as the control
plane's do under theirs), so that two ingests started together on a fresh
database migrate it one after the other instead of racing on ``CREATE TABLE``.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import text

from archipel.ledger._tables import VERSION_TABLE, metadata

#: the advisory lock key of the ledger's migrations (not the control plane's: the two
#: chains may migrate one database at the same time, each its own tables)
MIGRATION_LOCK = 0x6C656467_6D696772  # "ledgmigr"

# `upgrade head` runs on every ingest: its INFO lines say nothing to a user
logging.getLogger("alembic").setLevel(logging.WARNING)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger's migrations through archipel.ledger.Ledger.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # held until the caller's transaction commits, with the migrations in it
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.run_migrations()
