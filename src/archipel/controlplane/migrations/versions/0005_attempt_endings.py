"""Metering: the priced terms of each attempt's placement, and an outbox of ended attempts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("terms", sa.Text(), nullable=True))
    op.create_table(
        "attempt_endings",
        sa.Column("attempt_id", sa.String(60), sa.ForeignKey("attempts.id"), primary_key=True),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attempt_endings")
    with op.batch_alter_table("attempts") as batch:  # batch: SQLite drops columns by copying
        batch.drop_column("terms")
