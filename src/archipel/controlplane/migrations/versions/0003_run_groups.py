"""Runs in groups: the replicas of one service share a ``group_id``.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("group_id", sa.String(40), nullable=True))
    op.create_index("ix_runs_group_id", "runs", ["group_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_group_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:  # batch: SQLite drops columns by copying
        batch.drop_column("group_id")
