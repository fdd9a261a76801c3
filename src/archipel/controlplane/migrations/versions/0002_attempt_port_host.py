"""Attempts of services: the port they listen on and the host they run on.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("port", sa.Integer(), nullable=True))
    op.add_column("attempts", sa.Column("host", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:  # batch: SQLite drops columns by copying
        batch.drop_column("host")
        batch.drop_column("port")
