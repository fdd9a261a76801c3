"""Entries name their project and accelerator (budgets per project, spend per GPU kind).

Revision ID: l0002
Revises: l0001
"""

import sqlalchemy as sa
from alembic import op

revision = "l0002"
down_revision = "l0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("project", sa.String(200), nullable=True))
        batch.add_column(sa.Column("accelerator", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("accelerator")
        batch.drop_column("project")
