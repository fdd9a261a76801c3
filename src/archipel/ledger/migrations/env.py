"""Alembic environment of the ledger: its own chain and version table, on the caller's connection.

The ledger may share a database with the control plane (one deployment, one
ledger): its version table (``archipel_ledger_version``) keeps the two chains
apart, and neither touches the other's tables.
"""

from __future__ import annotations

import logging

from alembic import context

from archipel.ledger._tables import VERSION_TABLE, metadata

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
    context.run_migrations()
